//! Lines to PID 1 on the notification pipe ($NOTIFY_FD), through board-support's NotifyFd.

use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;

pub struct Notifier {
    pipe: Option<NotifyFd>,
}

impl Notifier {
    /// Without NOTIFY_FD (run by hand) notifications are skipped; a bad one is printed.
    pub fn from_env() -> Notifier {
        match NotifyFd::from_env() {
            Ok(pipe) => Notifier { pipe },
            Err(err) => {
                println!("notify error={err}");
                Notifier { pipe: None }
            }
        }
    }

    #[cfg(test)]
    pub fn from_pipe(pipe: NotifyFd) -> Notifier {
        Notifier { pipe: Some(pipe) }
    }

    /// Failures are printed, not fatal: the test reading the console decides what they mean.
    pub fn notify(&self, message: Message) {
        if let Some(pipe) = &self.pipe
            && let Err(err) = pipe.send(&message)
        {
            println!("notify error={err}");
        }
    }
}
