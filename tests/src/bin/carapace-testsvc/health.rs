//! `health`: asks agentd's health socket, as a local client would.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const SOCKET: &str = "/run/agentd/agentd.sock";
/// agentd may start well after this service on a slow (emulated) machine.
const WAIT_FOR_SOCKET: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(500);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run() {
    match ask_health(Path::new(SOCKET), WAIT_FOR_SOCKET) {
        Ok(reply) => println!("health reply={reply}"),
        Err(err) => println!("health error={err}"),
    }
}

/// Connects as soon as something listens at `socket` (within `wait`), sends `health` and
/// returns the reply line without its newline.
pub fn ask_health(socket: &Path, wait: Duration) -> io::Result<String> {
    let deadline = Instant::now() + wait;
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => sleep(POLL),
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("{}: {err}", socket.display()),
                ));
            }
        }
    };
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.write_all(b"health\n")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    Ok(reply.trim_end_matches('\n').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    #[test]
    fn waits_for_the_socket_then_asks() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agentd.sock");
        let server_socket = socket.clone();
        let server = thread::spawn(move || {
            sleep(Duration::from_millis(300));
            let listener = UnixListener::bind(server_socket).unwrap();
            let (stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            BufReader::new(&stream).read_line(&mut request).unwrap();
            (&stream).write_all(b"{\"status\":\"ok\"}\n").unwrap();
            request
        });
        let reply = ask_health(&socket, Duration::from_secs(10)).unwrap();
        assert_eq!(reply, "{\"status\":\"ok\"}");
        assert_eq!(server.join().unwrap(), "health\n");
    }

    #[test]
    fn gives_up_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let err = ask_health(&dir.path().join("absent.sock"), Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("absent.sock"), "{err}");
    }
}
