//! Lines to PID 1 over the notification pipe: `READY=1` once serving, `WATCHDOG=1` while alive.

use std::convert::Infallible;
use std::os::fd::RawFd;
use std::time::Duration;

use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;

use crate::error::Error;

/// Well inside the shortest watchdog PID 1 is configured with (30 s for agentd).
pub const WATCHDOG_PERIOD: Duration = Duration::from_secs(5);

pub struct Notifier {
    /// `None` when run by hand without PID 1.
    pipe: Option<NotifyFd>,
}

impl Notifier {
    /// Takes ownership of `fd` (board-support's NotifyFd: close-on-exec, non-blocking). Call
    /// it once per process: the fd is closed when the notifier is dropped.
    pub fn from_fd(fd: Option<RawFd>) -> Result<Notifier, Error> {
        let pipe = fd.map(NotifyFd::from_fd).transpose()?;
        Ok(Notifier { pipe })
    }

    /// Sends `message` as one line.
    pub fn notify(&self, message: Message) -> Result<(), Error> {
        let Some(pipe) = &self.pipe else {
            return Ok(());
        };
        pipe.send(&message).map_err(|source| Error::Notify {
            fd: pipe.fd(),
            source,
        })
    }

    /// Pets PID 1's watchdog every `period` ([`WATCHDOG_PERIOD`] in service), starting now.
    /// Failures are printed and the petting goes on: a missed beat is PID 1's to judge.
    pub async fn pet_watchdog(&self, period: Duration) -> Infallible {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = self.notify(Message::Watchdog) {
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
        notifier.notify(Message::Ready).unwrap();
        notifier.notify(Message::Watchdog).unwrap();
        drop(notifier);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "READY=1\nWATCHDOG=1\n");
    }

    #[test]
    fn without_fd_nothing_is_sent() {
        Notifier::from_fd(None)
            .unwrap()
            .notify(Message::Ready)
            .unwrap();
    }

    #[test]
    fn closed_fd_is_an_error() {
        // Far above any fd a test process has open (closing one of ours instead could race
        // with another test reusing its number).
        let fd = 999_999;
        let err = Notifier::from_fd(Some(fd)).err().unwrap();
        assert!(
            err.to_string().contains(&format!("{fd} (NOTIFY_FD)")),
            "{err}"
        );
    }

    #[test]
    fn full_pipe_does_not_block() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let notifier = Notifier::from_fd(Some(writer.into_raw_fd())).unwrap();
        let filled = (0..100_000).any(|_| notifier.notify(Message::Watchdog).is_err());
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
