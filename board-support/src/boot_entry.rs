//! Boot Loader Specification entries for the two slots, named for systemd-boot's boot
//! counting: `carapace-a+3.conf` has 3 tries left, `carapace-a+2-1.conf` 2 left after 1 done,
//! `carapace-a+0-3.conf` none left (bad), and `carapace-a.conf` is committed and not counted.

use crate::slot::Slot;

/// Where the entries live, relative to the root of the ESP.
pub const ENTRIES_DIR: &str = "loader/entries";

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
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The entry for `slot`; its kernel and initrd live in the slot's own directory on the ESP so
/// an update never touches the running slot's files.
pub fn render_entry(slot: Slot, version: &str, kernel_args: &str) -> String {
    format!(
        "title Carapace (slot {slot})\n\
         version {version}\n\
         sort-key carapace\n\
         linux /{slot}/vmlinuz\n\
         initrd /{slot}/initrd\n\
         options {kernel_args}\n"
    )
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
            render_entry(Slot::B, "0.1.0", "quiet carapace.slot=b"),
            "title Carapace (slot b)\nversion 0.1.0\nsort-key carapace\nlinux /b/vmlinuz\n\
             initrd /b/initrd\noptions quiet carapace.slot=b\n"
        );
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
