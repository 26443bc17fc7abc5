//! The ACPI power button (QEMU's `system_powerdown`, a press on a mini PC): the kernel's
//! button driver reports it as KEY_POWER on an evdev device named "Power Button".

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

const INPUT_CLASS: &str = "/sys/class/input";
const DEVICE_NAME: &str = "Power Button";
/// `struct input_event` on 64-bit: struct timeval (16), type u16, code u16, value i32.
pub const INPUT_EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
const KEY_PRESSED: i32 = 1;

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
            fs::read_to_string(Path::new(INPUT_CLASS).join(name).join("device/name"))
                .is_ok_and(|device| device.trim() == DEVICE_NAME)
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

/// Whether a read from an event device holds a power button press.
pub fn contains_press(bytes: &[u8]) -> bool {
    bytes.chunks_exact(INPUT_EVENT_SIZE).any(is_press)
}

fn is_press(event: &[u8]) -> bool {
    let u16_at = |offset: usize| {
        let mut field = [0u8; 2];
        if let Some(src) = event.get(offset..offset + 2) {
            field.copy_from_slice(src);
        }
        u16::from_ne_bytes(field)
    };
    let mut value = [0u8; 4];
    if let Some(src) = event.get(20..24) {
        value.copy_from_slice(src);
    }
    u16_at(16) == EV_KEY && u16_at(18) == KEY_POWER && i32::from_ne_bytes(value) == KEY_PRESSED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut bytes = vec![0u8; 16];
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend_from_slice(&value.to_ne_bytes());
        bytes
    }

    #[test]
    fn only_a_power_key_press_counts() {
        assert!(contains_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!contains_press(&event(EV_KEY, KEY_POWER, 0)), "release");
        assert!(!contains_press(&event(EV_KEY, KEY_POWER, 2)), "autorepeat");
        assert!(!contains_press(&event(EV_KEY, 115, 1)), "another key");
        assert!(!contains_press(&event(0, 0, 0)), "EV_SYN");
    }

    #[test]
    fn finds_the_press_among_other_events() {
        let mut bytes = event(EV_KEY, KEY_POWER, 1);
        bytes.extend(event(0, 0, 0));
        bytes.splice(0..0, event(0, 0, 0));
        assert_eq!(bytes.len(), 3 * INPUT_EVENT_SIZE);
        assert!(contains_press(&bytes));
        assert!(
            !contains_press(&bytes[..INPUT_EVENT_SIZE + 10]),
            "a torn event is ignored"
        );
    }
}
