//! The health socket: a local client sends `health` and gets one JSON line back. Tests and
//! later the updater use it to decide whether this boot is healthy.

use std::convert::Infallible;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::error::Error;

pub const SOCKET_NAME: &str = "agentd.sock";

/// A request is one short word; anything longer is a confused or hostile client.
const MAX_REQUEST_BYTES: usize = 1024;
/// How long one client may take to send its request and take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more wait in the listen backlog instead of costing memory.
const MAX_CLIENTS: usize = 8;
/// Owner (agentd) and group may connect; others may not.
const SOCKET_MODE: u32 = 0o660;
/// Pause after a failed accept (e.g. out of fds) so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a health answer reports besides "ok".
pub struct HealthInfo {
    /// `ed25519:<hex public key>`
    pub identity: String,
    pub version: &'static str,
    pub started: Instant,
}

#[derive(Serialize)]
struct HealthReply<'a> {
    status: &'static str,
    identity: &'a str,
    version: &'a str,
    uptime_ms: u64,
}

#[derive(Serialize)]
struct ErrorReply {
    error: String,
}

pub struct HealthServer {
    listener: UnixListener,
    path: PathBuf,
    info: Arc<HealthInfo>,
}

impl HealthServer {
    /// Binds the socket at `path`, replacing a stale socket left by an earlier run. Must be
    /// called inside the tokio runtime.
    pub fn bind(path: &Path, info: HealthInfo) -> Result<HealthServer, Error> {
        let socket_error = |action| {
            move |source| Error::Socket {
                action,
                path: path.to_owned(),
                source,
            }
        };
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(socket_error("bind"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(socket_error("set the mode of"))?;
        Ok(HealthServer {
            listener,
            path: path.to_owned(),
            info: Arc::new(info),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers clients until the future is dropped, which also drops the clients in flight.
    pub async fn serve(&self) -> Infallible {
        let mut clients = JoinSet::new();
        loop {
            while clients.try_join_next().is_some() {}
            if clients.len() >= MAX_CLIENTS {
                clients.join_next().await;
            }
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let info = Arc::clone(&self.info);
                    clients.spawn(async move {
                        // A client that hung up or stalled only loses its own answer.
                        let _ = tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &info)).await;
                    });
                }
                Err(err) => {
                    eprintln!("health accept failed: {err}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    /// Removes the socket file so nothing connects to a dead agentd.
    pub fn remove_socket(&self) -> Result<(), Error> {
        fs::remove_file(&self.path).map_err(|source| Error::Socket {
            action: "remove",
            path: self.path.clone(),
            source,
        })
    }
}

/// Only a socket is removed: any other file at that path is not agentd's to delete.
fn remove_stale_socket(path: &Path) -> Result<(), Error> {
    let socket_error = |action| {
        move |source| Error::Socket {
            action,
            path: path.to_owned(),
            source,
        }
    };
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(socket_error("inspect")(err)),
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path).map_err(socket_error("remove stale"))
        }
        Ok(_) => Err(Error::NotASocket {
            path: path.to_owned(),
        }),
    }
}

async fn answer(mut stream: UnixStream, info: &HealthInfo) -> io::Result<()> {
    let reply = match read_request(&mut stream).await? {
        Some(request) => reply_to(&String::from_utf8_lossy(&request), info),
        None => error_reply(format!(
            "request longer than {MAX_REQUEST_BYTES} bytes; send 'health'"
        )),
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// One line without its newline, or `None` when it is longer than [`MAX_REQUEST_BYTES`].
/// End of stream also ends the line, so `printf health | nc -U` works.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = stream.read(&mut chunk).await?;
        let received = &chunk[..n];
        let newline = received.iter().position(|&b| b == b'\n');
        request.extend_from_slice(&received[..newline.unwrap_or(n)]);
        if request.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        if n == 0 || newline.is_some() {
            return Ok(Some(request));
        }
    }
}

/// The JSON line (with its newline) answering `request`.
fn reply_to(request: &str, info: &HealthInfo) -> String {
    match request.trim() {
        "health" => {
            let uptime_ms = u64::try_from(info.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            json_line(&HealthReply {
                status: "ok",
                identity: &info.identity,
                version: info.version,
                uptime_ms,
            })
        }
        other => error_reply(format!("unknown request '{other}'; send 'health'")),
    }
}

fn error_reply(error: String) -> String {
    json_line(&ErrorReply { error })
}

fn json_line(reply: &impl Serialize) -> String {
    // These replies are plain structs of strings and numbers, which always serialize.
    let mut line = serde_json::to_string(reply).unwrap_or_else(|_| String::from("{}"));
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    fn info() -> HealthInfo {
        HealthInfo {
            identity: format!("ed25519:{}", "ab".repeat(32)),
            version: "9.8.7",
            started: Instant::now(),
        }
    }

    #[test]
    fn health_reply_fields_in_order() {
        let reply = reply_to("health", &info());
        let prefix = format!(
            "{{\"status\":\"ok\",\"identity\":\"ed25519:{}\",\"version\":\"9.8.7\",\"uptime_ms\":",
            "ab".repeat(32)
        );
        assert!(reply.starts_with(&prefix), "{reply}");
        assert!(reply.ends_with("}\n"), "{reply}");
    }

    #[test]
    fn unknown_request_is_named_and_escaped() {
        assert_eq!(
            reply_to("status \"x\"", &info()),
            "{\"error\":\"unknown request 'status \\\"x\\\"'; send 'health'\"}\n"
        );
    }

    async fn serve_in(dir: &Path) -> (Arc<HealthServer>, tokio::task::JoinHandle<Infallible>) {
        let server = Arc::new(HealthServer::bind(&dir.join(SOCKET_NAME), info()).unwrap());
        let serving = Arc::clone(&server);
        let task = tokio::spawn(async move { serving.serve().await });
        (server, task)
    }

    async fn ask(path: &Path, request: &[u8]) -> String {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut line)
            .await
            .unwrap();
        line
    }

    #[tokio::test]
    async fn answers_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (server, task) = serve_in(dir.path()).await;
        let mode = fs::metadata(server.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);

        let reply: serde_json::Value =
            serde_json::from_str(&ask(server.path(), b"health\n").await).unwrap();
        assert_eq!(reply["status"], "ok");
        assert_eq!(reply["identity"], format!("ed25519:{}", "ab".repeat(32)));
        assert_eq!(reply["version"], "9.8.7");
        assert!(reply["uptime_ms"].is_u64());

        let reply = ask(server.path(), b"reboot\n").await;
        assert_eq!(
            reply,
            "{\"error\":\"unknown request 'reboot'; send 'health'\"}\n"
        );

        // No newline, just the end of the stream.
        let mut stream = UnixStream::connect(server.path()).await.unwrap();
        stream.write_all(b"health").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("{\"status\":\"ok\""), "{reply}");

        task.abort();
        server.remove_socket().unwrap();
        assert!(!server.path().exists());
    }

    #[tokio::test]
    async fn long_request_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (server, task) = serve_in(dir.path()).await;
        let reply = ask(server.path(), &[b'x'; MAX_REQUEST_BYTES + 1]).await;
        assert_eq!(
            reply,
            "{\"error\":\"request longer than 1024 bytes; send 'health'\"}\n"
        );
        task.abort();
    }

    #[tokio::test]
    async fn stalled_client_does_not_block_others() {
        let dir = tempfile::tempdir().unwrap();
        let (server, task) = serve_in(dir.path()).await;
        let _stalled = UnixStream::connect(server.path()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(2), ask(server.path(), b"health\n"));
        assert!(reply.await.unwrap().contains("\"ok\""));
        task.abort();
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (server, task) = serve_in(dir.path()).await;
        assert!(ask(server.path(), b"health\n").await.contains("\"ok\""));
        task.abort();
    }

    #[tokio::test]
    async fn other_file_in_the_way_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        fs::write(&path, "keep me").unwrap();
        let err = HealthServer::bind(&path, info()).err().unwrap();
        assert!(matches!(err, Error::NotASocket { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
    }
}
