//! Lines to PID 1 over the notification pipe: `READY=1` once serving, `WATCHDOG=1` while alive.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::fs::OFlags;
use rustix::io::FdFlags;

use crate::error::Error;

/// Well inside the shortest watchdog PID 1 is configured with (30 s for agentd).
pub const WATCHDOG_PERIOD: Duration = Duration::from_secs(5);

pub struct Notifier {
    /// (fd number, pipe); `None` when run by hand without PID 1.
    pipe: Option<(RawFd, File)>,
}

impl Notifier {
    /// Takes ownership of `fd`. Call it once per process: the fd is closed when the notifier
    /// is dropped.
    pub fn from_fd(fd: Option<RawFd>) -> Result<Notifier, Error> {
        let Some(fd) = fd else {
            return Ok(Notifier { pipe: None });
        };
        let failed = |errno: rustix::io::Errno| Error::Notify {
            fd,
            source: errno.into(),
        };
        // SAFETY: borrowed only for this one fcntl, which tells whether `fd` is open at all.
        rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(failed)?;
        // SAFETY: `fd` is open (checked above), PID 1 handed it to this process for this use
        // alone, and nothing else in agentd takes it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Later child processes (the inference server) must not inherit a way to claim
        // agentd is healthy.
        rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC).map_err(failed)?;
        // A PID 1 that stops reading must not freeze agentd's single thread on a full pipe.
        let flags = rustix::fs::fcntl_getfl(&owned).map_err(failed)?;
        rustix::fs::fcntl_setfl(&owned, flags | OFlags::NONBLOCK).map_err(failed)?;
        Ok(Notifier {
            pipe: Some((fd, File::from(owned))),
        })
    }

    /// Sends `message` as one line. A line this short goes into the pipe whole (it is below
    /// PIPE_BUF), so PID 1 never sees half of one.
    pub fn notify(&self, message: &str) -> Result<(), Error> {
        let Some((fd, pipe)) = &self.pipe else {
            return Ok(());
        };
        let line = format!("{message}\n");
        (&*pipe)
            .write_all(line.as_bytes())
            .map_err(|source| Error::Notify { fd: *fd, source })
    }

    /// Pets PID 1's watchdog every `period` ([`WATCHDOG_PERIOD`] in service), starting now.
    /// Failures are printed and the petting goes on: a missed beat is PID 1's to judge.
    pub async fn pet_watchdog(&self, period: Duration) -> Infallible {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = self.notify("WATCHDOG=1") {
                eprintln!("watchdog {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::IntoRawFd;

    #[test]
    fn writes_lines_into_the_pipe() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let notifier = Notifier::from_fd(Some(writer.into_raw_fd())).unwrap();
        notifier.notify("READY=1").unwrap();
        notifier.notify("WATCHDOG=1").unwrap();
        drop(notifier);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "READY=1\nWATCHDOG=1\n");
    }

    #[test]
    fn without_fd_nothing_is_sent() {
        Notifier::from_fd(None).unwrap().notify("READY=1").unwrap();
    }

    #[test]
    fn closed_fd_is_an_error() {
        // Far above any fd a test process has open (closing one of ours instead could race
        // with another test reusing its number).
        let fd = 999_999;
        let err = Notifier::from_fd(Some(fd)).err().unwrap();
        assert!(err.to_string().contains(&format!("fd {fd}")), "{err}");
    }

    #[test]
    fn full_pipe_does_not_block() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let notifier = Notifier::from_fd(Some(writer.into_raw_fd())).unwrap();
        let filled = (0..100_000).any(|_| notifier.notify("WATCHDOG=1").is_err());
        assert!(filled, "a full pipe reports an error instead of blocking");
    }

    #[tokio::test]
    async fn watchdog_pets_every_period() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let notifier = Notifier::from_fd(Some(writer.into_raw_fd())).unwrap();
        let period = Duration::from_millis(40);
        let petting = tokio::time::timeout(period * 5 / 2, notifier.pet_watchdog(period));
        assert!(petting.await.is_err(), "petting goes on until stopped");
        drop(notifier);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        // Timing on a busy machine decides whether the third beat makes it.
        assert!(
            got == "WATCHDOG=1\n".repeat(2) || got == "WATCHDOG=1\n".repeat(3),
            "{got:?}"
        );
    }
}
