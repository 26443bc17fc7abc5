//! A service's end of the notification pipe: PID 1 gives every service the pipe as fd 3 and
//! names it in $NOTIFY_FD. The service uses the inherited descriptor itself (reopening it
//! through /proc/self/fd would check the pipe's owner, root, against the service's uid and
//! fail), marks it close-on-exec (a child must not be able to claim the service is healthy)
//! and non-blocking (a PID 1 that stops reading must not freeze the service). The one place
//! where a service turns a descriptor number into a file, and so the one unsafe block for it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::OFlags;
use rustix::io::FdFlags;

use crate::error::Error;
use crate::notify::Message;

/// The environment variable PID 1 sets (docs/boot-contract.md).
pub const NOTIFY_FD_VAR: &str = "NOTIFY_FD";

#[derive(Debug)]
pub struct NotifyFd {
    fd: RawFd,
    pipe: File,
}

impl NotifyFd {
    /// The pipe named by $NOTIFY_FD; `Ok(None)` when it is unset (the program was run by
    /// hand). Takes ownership of the descriptor: call it once per process.
    pub fn from_env() -> Result<Option<NotifyFd>, Error> {
        match std::env::var(NOTIFY_FD_VAR) {
            Err(_) => Ok(None),
            Ok(value) => match value.trim().parse::<RawFd>() {
                Ok(fd) => NotifyFd::from_fd(fd).map(Some),
                Err(_) => Err(Error::NotifyFd {
                    fd: value,
                    reason: "not a descriptor number".into(),
                }),
            },
        }
    }

    /// Takes ownership of `fd`, which must be open and must not be stdin, stdout or stderr.
    pub fn from_fd(fd: RawFd) -> Result<NotifyFd, Error> {
        let failed = |reason: String| Error::NotifyFd {
            fd: fd.to_string(),
            reason,
        };
        if fd <= 2 {
            return Err(failed("0, 1 and 2 are stdin, stdout and stderr".into()));
        }
        // SAFETY: borrowed only for this one fcntl, which tells whether `fd` is open at all.
        #[allow(unsafe_code)]
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_getfd(borrowed).map_err(|e| failed(format!("not open: {e}")))?;
        // SAFETY: `fd` is open (checked above), PID 1 handed it to this process for this use
        // alone, and the caller takes it once.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC).map_err(|e| failed(e.to_string()))?;
        let flags = rustix::fs::fcntl_getfl(&owned).map_err(|e| failed(e.to_string()))?;
        rustix::fs::fcntl_setfl(&owned, flags | OFlags::NONBLOCK)
            .map_err(|e| failed(e.to_string()))?;
        Ok(NotifyFd {
            fd,
            pipe: File::from(owned),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Sends `message` as one line. A line this short goes into the pipe whole (below
    /// PIPE_BUF), so PID 1 never reads half of one.
    pub fn send(&self, message: &Message) -> io::Result<()> {
        (&self.pipe).write_all(format!("{message}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    use super::*;

    #[test]
    fn sends_lines_pid1_parses() {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        let notify = NotifyFd::from_fd(writer.into_raw_fd()).unwrap();
        notify.send(&Message::Ready).unwrap();
        notify.send(&Message::Watchdog).unwrap();
        notify.send(&Message::Status("serving".into())).unwrap();
        drop(notify);
        let mut text = String::new();
        File::from(reader).read_to_string(&mut text).unwrap();
        let parsed: Vec<Message> = text.lines().map(crate::notify::parse).collect();
        assert_eq!(
            parsed,
            [
                Message::Ready,
                Message::Watchdog,
                Message::Status("serving".into())
            ]
        );
    }

    #[test]
    fn a_closed_or_standard_descriptor_is_refused() {
        let err = NotifyFd::from_fd(1).unwrap_err().to_string();
        assert!(err.contains("stdout"), "{err}");
        let err = NotifyFd::from_fd(9999).unwrap_err().to_string();
        assert!(err.contains("not open"), "{err}");
    }
}
