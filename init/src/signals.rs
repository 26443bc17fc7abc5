//! The signals PID 1 acts on, read from a signalfd in the event loop instead of handlers:
//! nothing runs asynchronously, so no state can be half-updated when a signal arrives. The
//! kernel queues blocked signals even for init, whose default dispositions it would drop.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Context, Result};

pub use carapace_lifecycle::Action;

/// A request to act, from a signal (or the power button).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    ChildExited,
    Shutdown {
        reason: &'static str,
        action: Action,
    },
}

/// SIGINT is what the kernel sends for Ctrl-Alt-Del once `reboot(CAD_OFF)` ran.
const HANDLED: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGPWR,
    Signal::SIGHUP,
];

pub fn event_for(signal: Signal) -> Option<Event> {
    match signal {
        Signal::SIGCHLD => Some(Event::ChildExited),
        Signal::SIGTERM => Some(Event::Shutdown {
            reason: "SIGTERM",
            action: Action::Reboot,
        }),
        Signal::SIGINT => Some(Event::Shutdown {
            reason: "SIGINT",
            action: Action::Reboot,
        }),
        Signal::SIGHUP => Some(Event::Shutdown {
            reason: "SIGHUP",
            action: Action::Reboot,
        }),
        Signal::SIGPWR => Some(Event::Shutdown {
            reason: "SIGPWR",
            action: Action::PowerOff,
        }),
        _ => None,
    }
}

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the handled signals and opens the signalfd; call before the first child exists.
    pub fn block_and_open() -> Result<Signals> {
        let mut set = SigSet::empty();
        for signal in HANDLED {
            set.add(signal);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .context(|| "block signals".to_owned())?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context(|| "open signalfd".to_owned())?;
        Ok(Signals { fd })
    }

    pub fn fd(&self) -> &SignalFd {
        &self.fd
    }

    /// Every event queued right now.
    pub fn drain(&self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Some(event) = Signal::try_from(info.ssi_signo as i32)
                .ok()
                .and_then(event_for)
            {
                events.push(event);
            }
        }
        events
    }
}

/// In a freshly forked child, before exec: an empty signal mask and default SIGPIPE (std
/// ignores it in its own process, and an ignored disposition survives exec). std already
/// does both; repeating it here makes the services' start state this file's promise.
pub fn reset_in_child() -> std::io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: SIG_DFL installs no handler; called between fork and exec in a
    // single-threaded child.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_signals_power_off_and_the_rest_reboot() {
        assert_eq!(
            event_for(Signal::SIGPWR),
            Some(Event::Shutdown {
                reason: "SIGPWR",
                action: Action::PowerOff
            })
        );
        for (signal, name) in [
            (Signal::SIGTERM, "SIGTERM"),
            (Signal::SIGINT, "SIGINT"),
            (Signal::SIGHUP, "SIGHUP"),
        ] {
            assert_eq!(
                event_for(signal),
                Some(Event::Shutdown {
                    reason: name,
                    action: Action::Reboot
                })
            );
        }
        assert_eq!(event_for(Signal::SIGCHLD), Some(Event::ChildExited));
        assert_eq!(event_for(Signal::SIGUSR1), None);
    }
}
