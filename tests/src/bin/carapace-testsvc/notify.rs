//! Lines to PID 1 on the notification pipe ($NOTIFY_FD).

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Without NOTIFY_FD (run by hand) notifications are skipped. The inherited descriptor
    /// is used itself: reopening the pipe through /proc/self/fd would check its owner (root,
    /// PID 1) against this service's uid and fail.
    pub fn from_env() -> Notifier {
        let Some(fd) = std::env::var("NOTIFY_FD").ok() else {
            return Notifier { pipe: None };
        };
        let open = fd
            .parse::<RawFd>()
            .ok()
            .filter(|&fd| fd > 2 && std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
        match open {
            // SAFETY: the descriptor is open (its /proc link exists), PID 1 handed it to this
            // process for notifications, and nothing else here takes it.
            Some(fd) => Notifier {
                pipe: Some(unsafe { File::from_raw_fd(fd) }),
            },
            None => {
                println!("notify error=NOTIFY_FD={fd} is not an open descriptor");
                Notifier { pipe: None }
            }
        }
    }

    #[cfg(test)]
    pub fn from_file(pipe: File) -> Notifier {
        Notifier { pipe: Some(pipe) }
    }

    /// Failures are printed, not fatal: the test reading the console decides what they mean.
    pub fn notify(&self, message: &str) {
        if let Some(mut pipe) = self.pipe.as_ref()
            && let Err(err) = pipe.write_all(format!("{message}\n").as_bytes())
        {
            println!("notify error={err}");
        }
    }
}
