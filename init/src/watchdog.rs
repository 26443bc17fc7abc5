//! The hardware watchdog (i6300esb in QEMU): once opened it resets the box unless PID 1
//! pets it, which PID 1 does only while the box is healthy (see health.rs).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Getter, Opcode, Updater, opcode};

use crate::error::{Context, Result};

const DEVICE: &str = "/dev/watchdog";
pub const TIMEOUT_SECONDS: i32 = 20;
const WDIOC_KEEPALIVE: Opcode = opcode::read::<i32>(b'W', 5);
const WDIOC_SETTIMEOUT: Opcode = opcode::read_write::<i32>(b'W', 6);

pub struct Watchdog {
    fd: OwnedFd,
}

/// Opens /dev/watchdog, which starts it, and sets its timeout; `Ok(None)` without one.
pub fn open_if_present() -> Result<Option<Watchdog>> {
    if !Path::new(DEVICE).exists() {
        return Ok(None);
    }
    let fd = rustix::fs::open(DEVICE, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .context(|| format!("open {DEVICE}"))?;
    let mut timeout = TIMEOUT_SECONDS;
    // SAFETY: WDIOC_SETTIMEOUT reads and writes back one int.
    unsafe { rustix::ioctl::ioctl(&fd, Updater::<WDIOC_SETTIMEOUT, i32>::new(&mut timeout)) }
        .context(|| format!("set the timeout of {DEVICE}"))?;
    // The driver may round the timeout; a pet every second is well inside any it picks.
    let watchdog = Watchdog { fd };
    watchdog.keepalive();
    Ok(Some(watchdog))
}

impl Watchdog {
    pub fn keepalive(&self) {
        // SAFETY: WDIOC_KEEPALIVE takes an int pointer it does not use.
        let _ = unsafe { rustix::ioctl::ioctl(&self.fd, Getter::<WDIOC_KEEPALIVE, i32>::new()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_linux_watchdog_h() {
        assert_eq!(WDIOC_KEEPALIVE as u64, 0x8004_5705);
        assert_eq!(WDIOC_SETTIMEOUT as u64, 0xc004_5706);
    }
}
