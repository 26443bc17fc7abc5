//! The control socket ($RUNTIME_DIRECTORY/control.sock): how agentd, which cannot write
//! netd's files or signal it, puts Wi-Fi networks on trial, commits them or goes back
//! (board_support::netd_control is the protocol). The socket is open to every local user,
//! as the status socket is, and a client whose uid (SO_PEERCRED) is not one of
//! `--controller <uid>` is closed without an answer.
//!
//! Each connection is read here and handed to netd's main loop as an [`Ask`], so every
//! change to the configuration happens in one place, in order. After a trial is applied
//! the reply waits (briefly) until the Wi-Fi station loop has acted on the new networks:
//! the controller's checks that follow then test the new networks, not the old association.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use board_support::netd_control::{MAX_REQUEST_BYTES, Reply, Request};
use carapace_netpolicy::config::WifiNetwork;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};

/// A controller that does not send its line within this long is closed.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A controller that does not take its reply within this long is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a trial's reply waits for the station loop (it polls every few seconds, and a
/// change wakes it at once). Without Wi-Fi hardware or bus it never answers; the reply
/// then goes after this wait, the configuration being in force all the same.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the main loop answers: the reply, and the Wi-Fi networks in force after a trial
/// started or ended, which the reply waits for the station loop to have acted on.
pub struct Answer {
    pub reply: Reply,
    pub settle: Option<Vec<WifiNetwork>>,
}

/// A checked request and where its answer goes.
pub type Ask = (Request, oneshot::Sender<Answer>);

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    controllers: Vec<u32>,
    settle: Duration,
}

impl ControlServer {
    pub fn bind(path: &Path, controllers: Vec<u32>) -> Result<ControlServer> {
        let bind_error = |source| Error::Bind {
            what: path.display().to_string(),
            source,
        };
        // A socket left by the netd that ran before a crash.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(bind_error)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            controllers,
            settle: SETTLE_TIMEOUT,
        })
    }

    /// Another wait than [`SETTLE_TIMEOUT`] (tests).
    pub fn settle_timeout(mut self, settle: Duration) -> ControlServer {
        self.settle = settle;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves for as long as the main loop takes asks. Each controller's connection runs in
    /// a task of its own, so a slow one holds up nobody.
    pub async fn serve(self, asks: mpsc::Sender<Ask>, applied: watch::Receiver<Vec<WifiNetwork>>) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let uid = match stream.peer_cred() {
                Ok(cred) if self.controllers.contains(&cred.uid()) => cred.uid(),
                // Not a controller: closed without a word.
                _ => continue,
            };
            if asks.is_closed() {
                return;
            }
            tokio::spawn(connection(
                stream,
                uid,
                asks.clone(),
                applied.clone(),
                self.settle,
            ));
        }
    }
}

async fn connection(
    mut stream: UnixStream,
    uid: u32,
    asks: mpsc::Sender<Ask>,
    mut applied: watch::Receiver<Vec<WifiNetwork>>,
    settle: Duration,
) {
    let reply = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => Reply::error(format!(
            "no request line within {} s",
            READ_TIMEOUT.as_secs()
        )),
        Ok(Err(problem)) => Reply::error(problem),
        Ok(Ok(request)) => {
            let what = describe(&request);
            let reply = ask(&asks, &mut applied, settle, request).await;
            match &reply.error {
                None => println!("control: uid={uid} {what}: ok"),
                Some(error) => println!("control: uid={uid} {what}: refused: {error}"),
            }
            reply
        }
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = stream.write_all(reply.to_line().as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The request line: at most [`MAX_REQUEST_BYTES`], UTF-8, checked.
async fn read_request(stream: &mut UnixStream) -> std::result::Result<Request, String> {
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(stream.take(limit + 1));
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|err| format!("reading the request: {err}; send one UTF-8 JSON line"))?;
    if line.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request is longer than {MAX_REQUEST_BYTES} bytes; send fewer networks"
        ));
    }
    Request::parse(&line)
}

async fn ask(
    asks: &mpsc::Sender<Ask>,
    applied: &mut watch::Receiver<Vec<WifiNetwork>>,
    settle: Duration,
    request: Request,
) -> Reply {
    let (tx, rx) = oneshot::channel();
    if asks.send((request, tx)).await.is_err() {
        return Reply::error("netd is stopping; try again once it is back");
    }
    let Ok(answer) = rx.await else {
        return Reply::error("netd is stopping; try again once it is back");
    };
    if let Some(networks) = answer.settle {
        let _ = tokio::time::timeout(settle, applied.wait_for(|a| *a == networks)).await;
    }
    answer.reply
}

/// A request for the console: SSIDs, never passphrases.
fn describe(request: &Request) -> String {
    match request {
        Request::WifiTrial {
            networks,
            revert_after_s,
        } => {
            let ssids: Vec<&str> = networks.iter().map(|n| n.ssid.as_str()).collect();
            format!(
                "wifi_trial networks={} revert_after_s={revert_after_s}",
                ssids.join(",")
            )
        }
        Request::Commit {} => "commit".into(),
        Request::Revert {} => "revert".into(),
        Request::Allow { name, port } => format!("allow {name} port {port}"),
        Request::Disallow { name, port } => format!("disallow {name} port {port}"),
    }
}

/// The uids after each `--controller`.
pub fn controllers(args: &[String]) -> Result<Vec<u32>> {
    let mut uids = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("--controller", Some(uid)) => uids.push(uid.parse().map_err(|_| Error::Args {
                problem: format!("--controller {uid:?}: a uid is a number"),
            })?),
            _ => {
                return Err(Error::Args {
                    problem: format!("unknown argument {word:?}"),
                });
            }
        }
    }
    Ok(uids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const SECRET: &str = "correct horse battery";

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            controllers(&words("--controller 1000 --controller 7")).unwrap(),
            [1000, 7]
        );
        assert!(controllers(&[]).unwrap().is_empty());
        for bad in ["--controller x", "--controller", "--reader 1000"] {
            let error = controllers(&words(bad)).unwrap_err().to_string();
            assert!(
                error.contains("usage: netd [--controller <uid>]"),
                "{error}"
            );
        }
    }

    /// A server in a temporary directory whose main loop records each request and answers
    /// with `reply`; a trial's answer waits for `applied` to show its networks.
    struct Served {
        dir: tempfile::TempDir,
        seen: Arc<Mutex<Vec<Request>>>,
        applied: watch::Sender<Vec<WifiNetwork>>,
    }

    const SETTLE: Duration = Duration::from_secs(1);

    fn serve(controllers: Vec<u32>, reply: Reply) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let server = ControlServer::bind(&dir.path().join("control.sock"), controllers)
            .unwrap()
            .settle_timeout(SETTLE);
        let mode = std::fs::metadata(server.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
        let (asks_tx, mut asks_rx) = mpsc::channel::<Ask>(4);
        let (applied, applied_rx) = watch::channel(Vec::new());
        tokio::spawn(server.serve(asks_tx, applied_rx));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some((request, answer)) = asks_rx.recv().await {
                let settle = match &request {
                    Request::WifiTrial { networks, .. } => Some(networks.clone()),
                    _ => None,
                };
                record.lock().unwrap().push(request);
                let _ = answer.send(Answer {
                    reply: reply.clone(),
                    settle,
                });
            }
        });
        Served { dir, seen, applied }
    }

    /// Sends `line` and reads what comes back. A server that closes with part of the request
    /// unread (a stranger's, an overlong one) resets the connection after its reply, if any.
    async fn exchange(served: &Served, line: &str) -> String {
        let mut stream = UnixStream::connect(served.dir.path().join("control.sock"))
            .await
            .unwrap();
        let _ = stream.write_all(line.as_bytes()).await;
        let mut bytes = Vec::new();
        let mut buffer = [0; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(err) => panic!("reading the reply: {err}"),
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    fn me() -> u32 {
        rustix::process::getuid().as_raw()
    }

    fn trial_line() -> String {
        Request::WifiTrial {
            networks: vec![WifiNetwork {
                ssid: "home".into(),
                passphrase: SECRET.into(),
            }],
            revert_after_s: 60,
        }
        .to_line()
    }

    #[tokio::test]
    async fn a_controller_gets_answers() {
        let served = serve(vec![me()], Reply::ok());
        assert_eq!(
            exchange(&served, "{\"op\":\"commit\"}\n").await,
            "{\"ok\":true}\n"
        );
        assert_eq!(exchange(&served, &trial_line()).await, "{\"ok\":true}\n");
        let seen = served.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], Request::Commit {});
        assert!(
            matches!(&seen[1], Request::WifiTrial { networks, revert_after_s: 60 }
            if networks[0].passphrase == SECRET)
        );
    }

    #[tokio::test]
    async fn anyone_else_is_closed_without_an_answer() {
        let served = serve(vec![me().wrapping_add(1)], Reply::ok());
        assert_eq!(exchange(&served, "{\"op\":\"commit\"}\n").await, "");
        assert!(served.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_bad_request_is_answered_with_what_to_send_and_never_reaches_the_loop() {
        let served = serve(vec![me()], Reply::ok());
        let line = format!(
            "{{\"op\":\"wifi_trial\",\"networks\":[{{\"ssid\":\"home\",\"passphrase\":\"{SECRET}\",\"x\":1}}],\"revert_after_s\":60}}\n"
        );
        let text = exchange(&served, &line).await;
        let reply: Reply = serde_json::from_str(&text).unwrap();
        let error = reply.error.expect("an error");
        assert!(!reply.ok && error.contains("\"op\":\"commit\""), "{error}");
        assert!(!text.contains(SECRET), "{text}");
        let long = format!("{}\n", " ".repeat(MAX_REQUEST_BYTES + 10));
        let text = exchange(&served, &long).await;
        assert!(text.contains("longer than"), "{text}");
        assert!(served.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_loop_s_refusal_is_the_reply() {
        let served = serve(vec![me()], Reply::error("no Wi-Fi trial is pending"));
        assert_eq!(
            exchange(&served, "{\"op\":\"revert\"}\n").await,
            "{\"ok\":false,\"error\":\"no Wi-Fi trial is pending\"}\n"
        );
    }

    #[tokio::test]
    async fn a_trial_s_reply_waits_for_the_station_loop_but_not_for_ever() {
        let served = serve(vec![me()], Reply::ok());
        let path = served.dir.path().join("control.sock");
        let line = trial_line();
        let start = std::time::Instant::now();
        let client = tokio::spawn(async move {
            let mut stream = UnixStream::connect(path).await.unwrap();
            stream.write_all(line.as_bytes()).await.unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).await.unwrap();
            (std::time::Instant::now(), text)
        });
        tokio::time::sleep(SETTLE / 4).await;
        assert!(
            !client.is_finished(),
            "answered before the station loop acted"
        );
        served.applied.send_replace(vec![WifiNetwork {
            ssid: "home".into(),
            passphrase: SECRET.into(),
        }]);
        let (answered, text) = client.await.unwrap();
        assert_eq!(text, "{\"ok\":true}\n");
        assert!(answered - start < SETTLE, "{:?}", answered - start);

        // Nobody acts on the networks (no Wi-Fi): the reply comes after the settle timeout.
        served.applied.send_replace(Vec::new());
        let start = std::time::Instant::now();
        let text = exchange(&served, &trial_line()).await;
        assert_eq!(text, "{\"ok\":true}\n");
        assert!(start.elapsed() >= SETTLE);
    }
}
