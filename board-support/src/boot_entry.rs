//! Boot Loader Specification entries for the two slots, named for systemd-boot's boot
//! counting: `carapace-a+3.conf` has 3 tries left, `carapace-a+2-1.conf` 2 left after 1 done,
//! `carapace-a+0-3.conf` none left (bad), and `carapace-a.conf` is committed and not counted.
//!
//! Which entry boots is systemd-boot's order, `boot_entry_compare` in systemd's
//! src/boot/boot.c (read in the source with UKI profiles, v257 and later; the images carry
//! Debian's 257.13), with `default carapace-*` in loader.conf picking the first match:
//! 1. entries with no tries left (`+0-N`) sort after all others;
//! 2. entries with a `sort-key` before those without, then by sort-key (ours are all
//!    "carapace"), then by machine-id (we set none);
//! 3. then by `version`, newest first, compared with `strverscmp_improved` (digit runs compare
//!    as numbers, so "10" is newer than "9");
//! 4. then by id (from the file name), newest first, and between counting entries that are
//!    otherwise equal, more tries left first. Our two slots never get here: their
//!    generations differ.
//!
//! So the `version` line is not the software version but a boot generation: a number one
//! above every other Carapace entry's, given when a slot is installed. The newest install
//! boots first whatever software it holds (a forced downgrade too), and a slot that used up
//! its tries falls back to the other one by rule 1.

use crate::slot::Slot;

/// Where the entries live, relative to the root of the ESP.
pub const ENTRIES_DIR: &str = "loader/entries";

/// Where the box mounts the ESP (for the service with `boot_control = true`).
pub const ESP_MOUNT_POINT: &str = "/boot/efi";

/// The generation of the entry the builder writes: a fresh disk has only slot A.
pub const FIRST_GENERATION: u64 = 1;

/// Boots a trial slot gets before systemd-boot gives up on it.
pub const DEFAULT_TRIES: u32 = 3;

const PREFIX: &str = "carapace-";
const SUFFIX: &str = ".conf";

/// The file name of one slot's entry, with its boot counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub slot: Slot,
    /// `None` when the entry is committed: systemd-boot does not count its boots.
    pub tries_left: Option<u32>,
    /// Boots systemd-boot has counted so far; 0 for a committed entry.
    pub tries_done: u32,
}

impl EntryName {
    /// A committed entry: booted every time, never counted.
    pub fn committed(slot: Slot) -> EntryName {
        EntryName {
            slot,
            tries_left: None,
            tries_done: 0,
        }
    }

    /// A fresh trial with `tries` boots left.
    pub fn trial(slot: Slot, tries: u32) -> EntryName {
        EntryName {
            slot,
            tries_left: Some(tries),
            tries_done: 0,
        }
    }

    /// `None` for anything that is not a Carapace slot entry, so other files in the entries
    /// directory are left alone.
    pub fn parse(file_name: &str) -> Option<EntryName> {
        let rest = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let mut chars = rest.chars();
        let slot = match chars.next()? {
            'a' => Slot::A,
            'b' => Slot::B,
            _ => return None,
        };
        let counter = chars.as_str();
        if counter.is_empty() {
            return Some(EntryName::committed(slot));
        }
        let counter = counter.strip_prefix('+')?;
        let (left, done) = match counter.split_once('-') {
            Some((left, done)) => (left, Some(done)),
            None => (counter, None),
        };
        Some(EntryName {
            slot,
            tries_left: Some(decimal(left)?),
            tries_done: done.map_or(Some(0), decimal)?,
        })
    }

    pub fn file_name(&self) -> String {
        let slot = self.slot;
        match (self.tries_left, self.tries_done) {
            (None, _) => format!("{PREFIX}{slot}{SUFFIX}"),
            (Some(left), 0) => format!("{PREFIX}{slot}+{left}{SUFFIX}"),
            (Some(left), done) => format!("{PREFIX}{slot}+{left}-{done}{SUFFIX}"),
        }
    }

    /// systemd-boot still counts this entry's boots: it is on trial (or has failed it).
    pub fn is_counting(&self) -> bool {
        self.tries_left.is_some()
    }

    /// No tries left: systemd-boot sorts the entry last and boots it only if nothing else is
    /// left.
    pub fn is_bad(&self) -> bool {
        self.tries_left == Some(0)
    }
}

/// Digits only: `u32::from_str` would also accept "+3", which systemd-boot would not.
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The ESP directory that holds `slot`'s kernel and initrd ("a" or "b"): each slot has its
/// own, so an update never touches the files the running slot booted from.
pub fn slot_boot_dir(slot: Slot) -> String {
    slot.letter().to_string()
}

/// The entry for `slot`, installed as boot generation `generation` (see the module comment):
/// the software version goes into the title only, where it orders nothing.
/// `software_version` and `kernel_args` must be one line each ([`is_entry_value`]); the
/// callers that take them from outside check that first.
pub fn render_entry(
    slot: Slot,
    generation: u64,
    software_version: &str,
    kernel_args: &str,
) -> String {
    let dir = slot_boot_dir(slot);
    format!(
        "title Carapace {software_version} (slot {slot})\n\
         version {generation}\n\
         sort-key carapace\n\
         linux /{dir}/vmlinuz\n\
         initrd /{dir}/initrd\n\
         options {kernel_args}\n"
    )
}

/// A slot's unified kernel image in its ESP directory, on a Secure Boot image: the kernel, the
/// initramfs and the command line in one signed file (image/src/uki.rs).
pub const UKI_FILE: &str = "carapace.efi";

/// The entry for `slot` on a Secure Boot image: systemd-boot starts the slot's signed UKI,
/// whose own command line holds the verity root hash. No `options` line: under Secure Boot
/// systemd's stub ignores one anyway, and a line that does nothing would only mislead.
pub fn render_uki_entry(slot: Slot, generation: u64, software_version: &str) -> String {
    let dir = slot_boot_dir(slot);
    format!(
        "title Carapace {software_version} (slot {slot})\n\
         version {generation}\n\
         sort-key carapace\n\
         efi /{dir}/{UKI_FILE}\n"
    )
}

/// The boot generation an entry's body carries: its `version` line, when that is a plain
/// decimal number. systemd-boot takes the last of repeated keys, so this does too. `None` for
/// an entry without one (written before generations, with the software version there).
pub fn entry_generation(body: &str) -> Option<u64> {
    body.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (key, value) = line.split_once([' ', '\t'])?;
            (key == "version").then(|| value.trim())
        })
        .next_back()
        .and_then(decimal)
}

/// Text that can stand in an entry line: printable, no line break that would start a line of
/// its own (an `options` or `linux` smuggled in), not empty.
pub fn is_entry_value(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_control)
}

/// The loader configuration. Without the menu (`timeout 0`) and with `editor no`, nobody at the
/// console can edit the kernel command line, which is what carries the verity root hash: the
/// boot menu is no way in. Auto entries (EFI shell, firmware setup, other OSes) are off for
/// the same reason.
pub fn render_loader_conf() -> String {
    "timeout 0\n\
     editor no\n\
     auto-entries no\n\
     auto-firmware no\n\
     console-mode keep\n\
     default carapace-*\n"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(slot: Slot, tries_left: Option<u32>, tries_done: u32) -> EntryName {
        EntryName {
            slot,
            tries_left,
            tries_done,
        }
    }

    #[test]
    fn parses_the_documented_names() {
        let cases = [
            ("carapace-a+3.conf", name(Slot::A, Some(3), 0)),
            ("carapace-a+2-1.conf", name(Slot::A, Some(2), 1)),
            ("carapace-a+0-3.conf", name(Slot::A, Some(0), 3)),
            ("carapace-a.conf", name(Slot::A, None, 0)),
            ("carapace-b.conf", name(Slot::B, None, 0)),
            ("carapace-b+10-20.conf", name(Slot::B, Some(10), 20)),
        ];
        for (file, expected) in cases {
            assert_eq!(EntryName::parse(file), Some(expected), "{file}");
            assert_eq!(expected.file_name(), file);
        }
    }

    #[test]
    fn zero_done_is_written_without_it() {
        let parsed = EntryName::parse("carapace-b+3-0.conf").unwrap();
        assert_eq!(parsed, name(Slot::B, Some(3), 0));
        assert_eq!(parsed.file_name(), "carapace-b+3.conf");
    }

    #[test]
    fn round_trips() {
        for slot in [Slot::A, Slot::B] {
            for left in [None, Some(0), Some(1), Some(DEFAULT_TRIES), Some(u32::MAX)] {
                for done in [0, 1, 3, u32::MAX] {
                    let entry = name(slot, left, if left.is_none() { 0 } else { done });
                    assert_eq!(EntryName::parse(&entry.file_name()), Some(entry));
                }
            }
        }
    }

    #[test]
    fn ignores_other_files() {
        for file in [
            "carapace-c.conf",
            "carapace-A.conf",
            "carapace-a.conf.tmp",
            ".carapace-a.conf.tmp",
            "carapace-a",
            "carapace-.conf",
            "carapace-ab.conf",
            "carapace-a+.conf",
            "carapace-a+3-.conf",
            "carapace-a++3.conf",
            "carapace-a+-3.conf",
            "carapace-a+3-+1.conf",
            "carapace-a+x.conf",
            "carapace-a+3-1-1.conf",
            "carapace-a+99999999999.conf",
            "debian-a.conf",
            "",
        ] {
            assert_eq!(EntryName::parse(file), None, "{file}");
        }
    }

    #[test]
    fn counting_and_bad() {
        assert!(!EntryName::committed(Slot::A).is_counting());
        assert!(EntryName::trial(Slot::A, DEFAULT_TRIES).is_counting());
        assert!(!EntryName::trial(Slot::A, 1).is_bad());
        assert!(name(Slot::A, Some(0), 3).is_bad());
        assert!(!EntryName::committed(Slot::B).is_bad());
    }

    #[test]
    fn entry_text() {
        assert_eq!(
            render_entry(Slot::B, 7, "0.1.0", "quiet carapace.slot=b"),
            "title Carapace 0.1.0 (slot b)\nversion 7\nsort-key carapace\nlinux /b/vmlinuz\n\
             initrd /b/initrd\noptions quiet carapace.slot=b\n"
        );
        assert_eq!(slot_boot_dir(Slot::A), "a");
        assert_eq!(slot_boot_dir(Slot::B), "b");
    }

    #[test]
    fn the_generation_is_read_back_from_the_version_line() {
        let uki = render_uki_entry(Slot::B, 3, "0.2.0");
        assert_eq!(
            uki,
            "title Carapace 0.2.0 (slot b)\nversion 3\nsort-key carapace\nefi /b/carapace.efi\n"
        );
        assert_eq!(entry_generation(&uki), Some(3));
        let body = render_entry(Slot::A, 42, "1.2.3", "quiet");
        assert_eq!(entry_generation(&body), Some(42));
        assert_eq!(
            entry_generation(&render_entry(Slot::B, u64::MAX, "1.0.0", "x")),
            Some(u64::MAX)
        );
        // systemd-boot keeps the last of repeated keys; tabs and indentation are whitespace.
        assert_eq!(entry_generation("version 1\nversion 3\n"), Some(3));
        assert_eq!(entry_generation("  version\t5  \n"), Some(5));
    }

    #[test]
    fn an_entry_without_a_generation_has_none() {
        for body in [
            "title Carapace (slot a)\nversion 0.1.0\n",
            "version \n",
            "version -1\n",
            "version +2\n",
            "version 99999999999999999999999\n",
            "versions 3\n",
            "title version 3\n",
            "",
        ] {
            assert_eq!(entry_generation(body), None, "{body:?}");
        }
    }

    #[test]
    fn entry_values_are_one_printable_line() {
        assert!(is_entry_value("0.2.0-rc.1"));
        assert!(is_entry_value("console=ttyS0 quiet carapace.slot=b"));
        for bad in ["", "0.1.0\noptions init=/bin/sh", "a\rb", "tab\there"] {
            assert!(!is_entry_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn loader_conf_text() {
        assert_eq!(
            render_loader_conf(),
            "timeout 0\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n\
             default carapace-*\n"
        );
    }
}
