//! Lines to PID 1 on the notification pipe ($NOTIFY_FD).

use std::fs::{File, OpenOptions};
use std::io::Write;

pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Without NOTIFY_FD (run by hand) notifications are skipped. The pipe is opened through
    /// /proc/self/fd, which gives a fresh handle on it: no need to claim ownership of a raw
    /// fd, and a wrong number fails cleanly instead of writing somewhere else.
    pub fn from_env() -> Notifier {
        let Some(fd) = std::env::var("NOTIFY_FD").ok() else {
            return Notifier { pipe: None };
        };
        match OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
        {
            Ok(pipe) => Notifier { pipe: Some(pipe) },
            Err(err) => {
                println!("notify error=cannot open NOTIFY_FD={fd}: {err}");
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
