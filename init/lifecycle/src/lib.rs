//! The supervisor's decisions, as a library with no I/O: PID 1 (init/src/supervisor.rs) feeds
//! it what happened and the time, performs what it returns, and owns every system call. A
//! package of its own so the decisions are tested exhaustively on a fake clock, and so PID 1's
//! own code stays the small, syscall-facing part that must never panic. The console queue
//! (what waits for the serial port, and what is dropped when it cannot keep up) is such a
//! decision too.

pub mod backoff;
pub mod console_queue;
pub mod health;
pub mod lifecycle;

pub use lifecycle::{Input, Lifecycle, Output};

/// How important a line the supervisor asks PID 1 to log is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// What a shutdown ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
    /// Into the kernel a service loaded with kexec_load (a Raspberry Pi's trial under a kernel
    /// without the tryboot hook); a plain reboot if none is loaded.
    RebootKexec,
    /// reboot(2) RESTART2 with the Pi firmware's tryboot argument.
    RebootTryboot,
}

impl Action {
    /// The reboot a service's notify line asks for, if it is one.
    pub fn requested_by(message: &board_support::notify::Message) -> Option<Action> {
        use board_support::notify::Message;
        match message {
            Message::Reboot => Some(Action::Reboot),
            Message::RebootKexec => Some(Action::RebootKexec),
            Message::RebootTryboot => Some(Action::RebootTryboot),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::PowerOff => "poweroff",
            Action::Reboot => "reboot",
            Action::RebootKexec => "reboot-kexec",
            Action::RebootTryboot => "reboot-tryboot",
        }
    }
}
