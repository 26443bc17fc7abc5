//! The last lines of the log, kept in memory and handed to the services allowed to read them
//! (agentd's `/logs` and its `recent_logs` tool): a client connects to
//! $RUNTIME_DIRECTORY/recent.sock and reads the lines, then end of file. The socket is open to
//! every local user, and a client whose uid is not one of `--reader <uid>` gets nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

pub const SOCKET_NAME: &str = "recent.sock";
/// What is kept: enough for a chat message or two, small against the logger's memory limit.
const KEEP_BYTES: usize = 32 * 1024;
/// A reader that does not take its lines within this long gets no more.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Recent {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Recent {
    pub fn push(&mut self, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_string());
        while self.bytes > KEEP_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes);
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// The listening socket, non-blocking (the logger polls it with /dev/kmsg).
pub fn listen(runtime_dir: &Path) -> Result<UnixListener> {
    let path = runtime_dir.join(SOCKET_NAME);
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| Error::Io { what, source }
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io("bind"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("set non-blocking"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(io("chmod"))?;
    Ok(listener)
}

/// Answers every waiting client: the lines to a reader, nothing to anyone else.
pub fn serve_waiting(listener: &UnixListener, recent: &Recent, readers: &[u32]) {
    while let Ok((stream, _)) = listener.accept() {
        let allowed = rustix::net::sockopt::socket_peercred(&stream)
            .map(|cred| readers.contains(&cred.uid.as_raw()))
            .unwrap_or(false);
        if allowed {
            send(stream, &recent.text());
        }
    }
}

fn send(mut stream: UnixStream, text: &str) {
    // The accepted socket inherits nothing from the listener: make it blocking, with a limit.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.write_all(text.as_bytes());
}

/// The uids after each `--reader`.
pub fn readers(args: &[String]) -> std::result::Result<Vec<u32>, String> {
    let mut uids = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("--reader", Some(uid)) => uids.push(
                uid.parse()
                    .map_err(|_| format!("--reader {uid:?}: a uid is a number"))?,
            ),
            _ => {
                return Err(format!(
                    "unknown argument {word:?}; usage: carapace-logger [--reader <uid>]..."
                ));
            }
        }
    }
    Ok(uids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn keeps_the_newest_lines_within_the_limit() {
        let mut recent = Recent::default();
        for i in 0..10_000 {
            recent.push(&format!("line {i}"));
        }
        let text = recent.text();
        assert!(text.len() <= KEEP_BYTES, "{}", text.len());
        assert!(text.ends_with("line 9999\n"));
        assert!(!text.contains("line 1\n"));
    }

    #[test]
    fn a_reader_gets_the_lines_and_others_get_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let listener = listen(dir.path()).unwrap();
        let mut recent = Recent::default();
        recent.push("hello");
        let me = rustix::process::getuid().as_raw();
        let read = |readers: &[u32]| {
            let mut client = UnixStream::connect(dir.path().join(SOCKET_NAME)).unwrap();
            serve_waiting(&listener, &recent, readers);
            let mut text = String::new();
            client.read_to_string(&mut text).unwrap();
            text
        };
        assert_eq!(read(&[me]), "hello\n");
        assert_eq!(read(&[me + 1]), "");
    }

    #[test]
    fn arguments() {
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            readers(&words("--reader 1000 --reader 7")).unwrap(),
            [1000, 7]
        );
        assert!(
            readers(&words("--reader x"))
                .unwrap_err()
                .contains("number")
        );
        assert!(readers(&words("--verbose")).unwrap_err().contains("usage"));
    }
}
