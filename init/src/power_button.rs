//! The power button: every input device that can send KEY_POWER
//! (board_support::power_key says how that is read), opened for PID 1's poll.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

use board_support::power_key::{KEY_POWER, has_key};
use rustix::fs::{Mode, OFlags};

const INPUT_CLASS: &str = "/sys/class/input";

/// Every power button's event device, opened non-blocking. There may be two (ACPI fixed
/// button and PNP0C0C) or none.
pub fn open_all() -> Vec<OwnedFd> {
    let Ok(dir) = fs::read_dir(INPUT_CLASS) else {
        return Vec::new();
    };
    let mut events: Vec<String> = dir
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("event"))
        .filter(|name| {
            let keys = Path::new(INPUT_CLASS)
                .join(name)
                .join("device/capabilities/key");
            fs::read_to_string(keys).is_ok_and(|keys| has_key(&keys, KEY_POWER))
        })
        .collect();
    events.sort();
    events
        .iter()
        .filter_map(|name| {
            let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
            rustix::fs::open(Path::new("/dev/input").join(name), flags, Mode::empty()).ok()
        })
        .collect()
}
