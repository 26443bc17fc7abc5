//! The hardware watchdog (i6300esb in QEMU): once opened it resets the box unless PID 1
//! pets it, which PID 1 does only while the box is healthy (see health.rs). It is opened
//! early in stage 2, before the slow module loading and disk preparation, and a helper
//! thread pets it during that blocking work for at most [`SETUP_LIMIT`]; a setup that hangs
//! longer is reset by the hardware.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Getter, Opcode, Updater, opcode};

use board_support::box_health;

use crate::error::{Context, Result};

const DEVICE: &str = "/dev/watchdog0";
const WDIOC_KEEPALIVE: Opcode = opcode::read::<i32>(b'W', 5);
const WDIOC_SETTIMEOUT: Opcode = opcode::read_write::<i32>(b'W', 6);
/// Formatting and growing /data on a large, slow card is the longest part of setup.
pub const SETUP_LIMIT: Duration = Duration::from_secs(10 * 60);
const SETUP_PET_INTERVAL: Duration = Duration::from_secs(1);
const SETUP_STOP_CHECK: Duration = Duration::from_millis(50);

pub struct Watchdog {
    fd: OwnedFd,
    last_pet: Instant,
    /// The longest time between two pets so far: how close the box came to a reset.
    pub max_gap: Duration,
}

/// Opens /dev/watchdog0, which starts it, and sets its timeout; `Ok(None)` without one.
pub fn open_if_present() -> Result<Option<Watchdog>> {
    if !Path::new(DEVICE).exists() {
        return Ok(None);
    }
    let fd = rustix::fs::open(DEVICE, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .context(|| format!("open {DEVICE}"))?;
    // The device runs from the open on: an error from here on must not drop the descriptor,
    // or the box resets within the driver's default timeout while nobody pets it.
    let max = std::fs::read_to_string(box_health::WATCHDOG_MAX_TIMEOUT).ok();
    let mut timeout = box_health::hardware_watchdog_timeout(max.as_deref()) as i32;
    // SAFETY: WDIOC_SETTIMEOUT reads and writes back one int.
    let set =
        unsafe { rustix::ioctl::ioctl(&fd, Updater::<WDIOC_SETTIMEOUT, i32>::new(&mut timeout)) };
    if let Err(err) = set {
        log_error!(
            "watchdog timeout={timeout} not set ({err}); petting it every second, within the \
             driver's own"
        );
    }
    // The driver may round the timeout; a pet every second is well inside any it picks.
    pet(&fd);
    Ok(Some(Watchdog {
        fd,
        last_pet: Instant::now(),
        max_gap: Duration::ZERO,
    }))
}

impl Watchdog {
    pub fn keepalive(&mut self) {
        pet(&self.fd);
        self.record_pet(Instant::now());
    }

    fn record_pet(&mut self, at: Instant) {
        self.max_gap = self
            .max_gap
            .max(at.saturating_duration_since(self.last_pet));
        self.last_pet = at;
    }

    /// Pets from a helper thread until [`SetupPetter::finish`] or [`SETUP_LIMIT`].
    pub fn pet_during_setup(self) -> SetupPetter {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match self.fd.try_clone() {
            Ok(fd) => {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("watchdog-setup".to_owned())
                    .spawn(move || pet_until(&fd, &stop))
                    .map_err(|err| log_error!("watchdog setup thread: {err}"))
                    .ok()
            }
            Err(err) => {
                log_error!("watchdog setup thread: dup: {err}");
                None
            }
        };
        SetupPetter {
            watchdog: self,
            stop,
            thread,
        }
    }
}

pub struct SetupPetter {
    watchdog: Watchdog,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Instant>>>,
}

impl SetupPetter {
    /// Stops the thread and hands the watchdog back, its gap record including the thread's.
    pub fn finish(self) -> Watchdog {
        let mut watchdog = self.watchdog;
        self.stop.store(true, Ordering::Relaxed);
        if let Some(pets) = self.thread.and_then(|thread| thread.join().ok()) {
            for at in pets {
                watchdog.record_pet(at);
            }
        }
        watchdog.keepalive();
        watchdog
    }
}

/// The helper thread: pets every second; returns when each pet happened (a few hundred).
fn pet_until(fd: &OwnedFd, stop: &AtomicBool) -> Vec<Instant> {
    let started = Instant::now();
    let mut pets = Vec::new();
    let mut next = started;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < SETUP_LIMIT {
        let now = Instant::now();
        if now >= next {
            pet(fd);
            pets.push(now);
            next = now + SETUP_PET_INTERVAL;
        }
        std::thread::sleep(SETUP_STOP_CHECK);
    }
    pets
}

fn pet(fd: &OwnedFd) {
    // SAFETY: WDIOC_KEEPALIVE takes an int pointer it does not use.
    let _ = unsafe { rustix::ioctl::ioctl(fd, Getter::<WDIOC_KEEPALIVE, i32>::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_linux_watchdog_h() {
        assert_eq!(WDIOC_KEEPALIVE as u64, 0x8004_5705);
        assert_eq!(WDIOC_SETTIMEOUT as u64, 0xc004_5706);
    }

    #[test]
    fn the_largest_gap_between_pets_is_kept() {
        let (fd, _other) = rustix::pipe::pipe().expect("pipe");
        let start = Instant::now();
        let mut watchdog = Watchdog {
            fd,
            last_pet: start,
            max_gap: Duration::ZERO,
        };
        watchdog.record_pet(start + Duration::from_millis(900));
        watchdog.record_pet(start + Duration::from_millis(3000));
        watchdog.record_pet(start + Duration::from_millis(3500));
        assert_eq!(watchdog.max_gap, Duration::from_millis(2100));
    }

    #[test]
    fn the_setup_thread_pets_until_stopped() {
        let (fd, _other) = rustix::pipe::pipe().expect("pipe");
        let watchdog = Watchdog {
            fd,
            last_pet: Instant::now(),
            max_gap: Duration::ZERO,
        };
        let petter = watchdog.pet_during_setup();
        std::thread::sleep(Duration::from_millis(1200));
        let watchdog = petter.finish();
        assert!(
            watchdog.max_gap < Duration::from_millis(1200),
            "{:?}",
            watchdog.max_gap
        );
        assert!(
            watchdog.max_gap >= Duration::from_millis(900),
            "{:?}",
            watchdog.max_gap
        );
    }
}
