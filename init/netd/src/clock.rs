//! The wall clock's floor and its corrections. A box without a battery-backed clock boots in
//! 1970 (or wherever its RTC drifted), and TLS needs a plausible time before the first
//! connection: so netd sets the clock forward to the last known time (kept in its state
//! directory) or the image's build time, whichever is later, before it says READY=1. SNTP
//! then steps the clock once, and slews it after that. No correction ever takes the clock
//! behind that floor: a server that says otherwise is wrong (or lying) and is ignored.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// In netd's state directory: the last known time, whole seconds since 1970, as text.
pub const CLOCK_FILE: &str = "clock";
/// A file on the verified root whose mtime is the image's build time (SOURCE_DATE_EPOCH).
pub const BUILD_TIME_FILE: &str = "/etc/carapace/image.toml";
/// Offsets below this are slewed even the first time: a step would only add jitter.
const STEP_THRESHOLD_SECS: f64 = 0.5;
/// adjtime(3) refuses more than about 2145 s; larger later corrections are slewed in parts.
pub const MAX_SLEW_SECS: f64 = 2000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Correction {
    /// Set the clock to this time (the first large correction of a boot).
    Step(SystemTime),
    /// adjtime by this many seconds.
    Slew(f64),
    /// The server's time is behind the floor: keep ours.
    Refuse { server_time: SystemTime },
}

/// What to do with an SNTP offset (server minus local, seconds) measured at `now`.
pub fn correction(now: SystemTime, offset: f64, floor: SystemTime, stepped: bool) -> Correction {
    let server_time = shift(now, offset);
    if server_time < floor {
        return Correction::Refuse { server_time };
    }
    if !stepped && offset.abs() >= STEP_THRESHOLD_SECS {
        Correction::Step(server_time)
    } else {
        Correction::Slew(offset.clamp(-MAX_SLEW_SECS, MAX_SLEW_SECS))
    }
}

pub fn shift(time: SystemTime, secs: f64) -> SystemTime {
    let magnitude = Duration::try_from_secs_f64(secs.abs()).unwrap_or(Duration::ZERO);
    if secs >= 0.0 {
        time.checked_add(magnitude).unwrap_or(time)
    } else {
        time.checked_sub(magnitude).unwrap_or(time)
    }
}

pub fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The last known time: the clock file (if readable and sane) and the image's build time.
pub struct Floor {
    pub stored: Option<SystemTime>,
    pub build: Option<SystemTime>,
}

impl Floor {
    pub fn load(state_dir: &Path) -> Floor {
        let stored = std::fs::read_to_string(state_dir.join(CLOCK_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
        let build = std::fs::metadata(BUILD_TIME_FILE)
            .and_then(|m| m.modified())
            .ok();
        Floor { stored, build }
    }

    pub fn time(&self) -> SystemTime {
        self.stored.max(self.build).unwrap_or(UNIX_EPOCH)
    }
}

/// Sets the clock forward to the floor when it is behind; returns the new time if it moved.
pub fn restore(floor: SystemTime) -> Result<Option<SystemTime>> {
    if SystemTime::now() >= floor {
        return Ok(None);
    }
    set(floor)?;
    Ok(Some(floor))
}

pub fn set(time: SystemTime) -> Result<()> {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let unix = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let timespec = rustix::time::Timespec {
        tv_sec: unix,
        tv_nsec: i64::from(since.subsec_nanos()),
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, timespec).map_err(|errno| {
        Error::SetClock {
            unix_secs: unix,
            source: errno.into(),
        }
    })
}

/// Writes the current time as the new last known time (atomically, so a power cut leaves the
/// old or the new value, never a torn one).
pub fn save(state_dir: &Path) -> Result<PathBuf> {
    let path = state_dir.join(CLOCK_FILE);
    let text = format!("{}\n", unix_secs(SystemTime::now()).max(0));
    board_support::atomic_file::write(&path, text.as_bytes(), 0o600).map_err(|source| {
        Error::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_first_large_offset_steps_and_later_ones_slew() {
        let now = at(1_000_000);
        assert_eq!(
            correction(now, 86_400.0, at(0), false),
            Correction::Step(at(1_086_400))
        );
        assert_eq!(correction(now, 3.0, at(0), true), Correction::Slew(3.0));
        assert_eq!(correction(now, 0.2, at(0), false), Correction::Slew(0.2));
        assert_eq!(
            correction(now, -90_000.0, at(0), true),
            Correction::Slew(-MAX_SLEW_SECS)
        );
    }

    #[test]
    fn a_server_behind_the_floor_is_refused() {
        let now = at(2_000_000);
        let floor = at(1_999_000);
        assert_eq!(
            correction(now, -5_000.0, floor, false),
            Correction::Refuse {
                server_time: at(1_995_000)
            }
        );
        assert_eq!(
            correction(now, -500.0, floor, false),
            Correction::Step(at(1_999_500))
        );
    }

    #[test]
    fn the_floor_is_the_later_of_the_stored_and_the_build_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CLOCK_FILE), "1800000000\n").expect("write");
        let floor = Floor::load(dir.path());
        assert_eq!(floor.stored, Some(at(1_800_000_000)));
        let both = Floor {
            stored: Some(at(5)),
            build: Some(at(7)),
        };
        assert_eq!(both.time(), at(7));
        std::fs::write(dir.path().join(CLOCK_FILE), "yesterday").expect("write");
        assert_eq!(Floor::load(dir.path()).stored, None);
        save(dir.path()).expect("save");
        let saved = Floor::load(dir.path()).stored.expect("saved");
        assert!(SystemTime::now().duration_since(saved).expect("past") < Duration::from_secs(5));
    }
}
