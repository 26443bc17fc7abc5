//! The control socket ($RUNTIME_DIRECTORY/control.sock, board_support::update_control is the
//! protocol). Open to every local user, like netd's; a client whose uid (SO_PEERCRED) is not
//! one of `--controller <uid>` is closed without an answer.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use board_support::update_control::{MAX_REQUEST_BYTES, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::error::{Error, Result};
use crate::trial::Health;
use crate::updater::Updater;

/// A controller that does not send its line within this long is closed.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A check talks to the repository; agentd waits this long for its answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn bind(path: &Path) -> Result<UnixListener> {
    // A socket left by the updated that ran before a crash.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(Error::io("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(Error::io("set the mode of", path))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, controllers: Vec<u32>, updater: Arc<Updater>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match stream.peer_cred() {
            Ok(cred) if controllers.contains(&cred.uid()) => {}
            _ => continue,
        }
        tokio::spawn(connection(stream, Arc::clone(&updater)));
    }
}

async fn connection(mut stream: UnixStream, updater: Arc<Updater>) {
    let outcome = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => Err(format!(
            "no request line within {} s",
            READ_TIMEOUT.as_secs()
        )),
        Ok(Err(problem)) => Err(problem),
        Ok(Ok(request)) => answer(&updater, request).await,
    };
    let reply = match outcome {
        Ok(()) => Reply {
            ok: true,
            error: None,
            status: updater.status(),
        },
        Err(error) => Reply {
            ok: false,
            error: Some(error),
            status: updater.status(),
        },
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = stream.write_all(reply.to_line().as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Acts on one request; what it says for the owner goes into the events, so every answer is
/// the status that follows.
async fn answer(updater: &Arc<Updater>, request: Request) -> Result<(), String> {
    let said = |outcome: Result<String>| match outcome {
        Ok(text) => {
            println!("control: {text}");
            Ok(())
        }
        Err(err) => Err(err.to_string()),
    };
    match request {
        Request::Health {
            self_test,
            im_connected,
            uptime_s,
        } => {
            updater.report_health(Health {
                self_test,
                im_connected,
                agentd_started: std::time::Instant::now()
                    .checked_sub(std::time::Duration::from_secs(uptime_s))
                    .unwrap_or_else(std::time::Instant::now),
                received: std::time::Instant::now(),
            });
            Ok(())
        }
        Request::Status {} => Ok(()),
        Request::Check { force } => {
            match tokio::time::timeout(CHECK_TIMEOUT, updater.check_now(force)).await {
                Ok(Ok(text)) => {
                    updater.note(text);
                    Ok(())
                }
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!(
                    "the repository did not answer within {} s",
                    CHECK_TIMEOUT.as_secs()
                )),
            }
        }
        Request::Install { force } => said(updater.start_install(force, true)),
        Request::Reboot {} => said(updater.reboot_into_armed()),
    }
}

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
            "the request is longer than {MAX_REQUEST_BYTES} bytes"
        ));
    }
    Request::parse(&line)
}
