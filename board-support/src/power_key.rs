//! The power button's kernel interfaces, read by PID 1 (init/src/power_button.rs opens the
//! devices): the `capabilities/key` bitmap in sysfs that says which input device can send
//! KEY_POWER (the ACPI button on a mini PC or q35, gpio-keys on a Raspberry Pi 5 and on QEMU's
//! virt without ACPI), and the `struct input_event` records it reads from them.

/// `struct input_event` on 64-bit: struct timeval (16), type u16, code u16, value i32.
pub const INPUT_EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
pub const KEY_POWER: u16 = 116;
const KEY_PRESSED: i32 = 1;

/// Whether a sysfs key bitmap (`capabilities/key`: hexadecimal words, most significant
/// first, as wide as the kernel's long) has bit `code`.
pub fn has_key(bitmap: &str, code: u16) -> bool {
    let bits = usize::BITS as usize;
    let word = code as usize / bits;
    bitmap
        .split_whitespace()
        .rev()
        .nth(word)
        .and_then(|w| usize::from_str_radix(w, 16).ok())
        .is_some_and(|w| w >> (code as usize % bits) & 1 == 1)
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
    fn a_device_is_a_power_button_when_its_key_bitmap_has_key_power() {
        // The ACPI power button on x86-64 and gpio-keys with only KEY_POWER on arm64 (64-bit
        // words: bit 116 is bit 52 of the second word from the right).
        assert!(has_key("10000000000000 0", KEY_POWER));
        // A keyboard without a power key, and a device with no keys.
        assert!(!has_key("3 fffffffff 0 0", KEY_POWER));
        assert!(!has_key("0", KEY_POWER));
        assert!(!has_key("", KEY_POWER));
        assert!(!has_key("zz 0", KEY_POWER));
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
