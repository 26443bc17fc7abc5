//! The count of boots in a row that never reached the ready line, kept in one small file on
//! /data (`/data/carapace/unready-boots`). PID 1 counts each boot before any service starts
//! and clears the count at the ready line; after `LIMIT` such boots the next one comes up
//! degraded instead of letting a fault that survives resets (a corrupt identity that makes
//! agentd crash-loop until the watchdog resets the box) loop for ever. The degraded boot
//! starts the count again, so a later restart tries once more.
//!
//! The count belongs to the slot that booted (`<count> <slot>\n`): a trial slot that never
//! becomes ready is booted until systemd-boot gives up on it, and those boots say nothing
//! about the slot it falls back to, whose first boot must not come up degraded for them.

use std::io;
use std::path::Path;

use crate::slot::Slot;

pub const PATH: &str = "/data/carapace/unready-boots";
pub const LIMIT: u32 = 3;

/// Counts this boot of `slot` at `path`: `Ok(Some(n))` when the `n` boots of this slot before
/// it never became ready and this one should be degraded. A missing or unreadable count is 0,
/// and so is a count of the other slot's boots.
pub fn count_this_boot(path: &Path, slot: Slot) -> io::Result<Option<u32>> {
    let before = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse(&text))
        .map_or(0, |(count, counted)| {
            // Written before the slot was stored: the boots were of the slot booted now
            // (nothing changed slots without a ready boot in between then).
            if counted.unwrap_or(slot) == slot {
                count
            } else {
                0
            }
        });
    let degrade = before >= LIMIT;
    store(path, if degrade { 0 } else { before + 1 }, slot)?;
    Ok(degrade.then_some(before))
}

/// The box became ready on `slot`: the count starts again.
pub fn clear(path: &Path, slot: Slot) -> io::Result<()> {
    store(path, 0, slot)
}

/// `<count> <slot>`, or the older `<count>` alone.
fn parse(text: &str) -> Option<(u32, Option<Slot>)> {
    let mut words = text.split_ascii_whitespace();
    let count = words.next()?.parse().ok()?;
    let slot = match words.next() {
        None => None,
        Some(word) => Some(word.parse().ok()?),
    };
    words.next().is_none().then_some((count, slot))
}

fn store(path: &Path, count: u32, slot: Slot) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic_file::write(path, format!("{count} {slot}\n").as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_after_limit_unready_ones_is_degraded_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carapace/unready-boots");
        for _ in 0..LIMIT {
            assert_eq!(count_this_boot(&path, Slot::A).unwrap(), None);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3 a\n");
        assert_eq!(count_this_boot(&path, Slot::A).unwrap(), Some(LIMIT));
        assert_eq!(
            count_this_boot(&path, Slot::A).unwrap(),
            None,
            "the count starts over"
        );
    }

    #[test]
    fn a_ready_boot_clears_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        for _ in 0..LIMIT {
            count_this_boot(&path, Slot::B).unwrap();
            clear(&path, Slot::B).unwrap();
        }
        assert_eq!(count_this_boot(&path, Slot::B).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 b\n");
    }

    /// A trial of B that crash-looped through its 3 tries; systemd-boot then boots A.
    #[test]
    fn the_fallback_slot_does_not_inherit_the_trial_slots_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        for _ in 0..LIMIT {
            assert_eq!(count_this_boot(&path, Slot::B).unwrap(), None);
        }
        assert_eq!(count_this_boot(&path, Slot::A).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 a\n");
        // A's own unready boots still count up to the limit.
        for _ in 1..LIMIT {
            assert_eq!(count_this_boot(&path, Slot::A).unwrap(), None);
        }
        assert_eq!(count_this_boot(&path, Slot::A).unwrap(), Some(LIMIT));
    }

    #[test]
    fn a_count_without_a_slot_is_the_booted_slots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        std::fs::write(&path, "3\n").unwrap();
        assert_eq!(count_this_boot(&path, Slot::B).unwrap(), Some(3));
        std::fs::write(&path, "2\n").unwrap();
        assert_eq!(count_this_boot(&path, Slot::A).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3 a\n");
    }

    #[test]
    fn a_garbled_count_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        for garbled in ["\u{0}\u{1}junk", "3 c\n", "3 a b\n", "-1 a\n", "a 3\n", ""] {
            std::fs::write(&path, garbled).unwrap();
            assert_eq!(
                count_this_boot(&path, Slot::A).unwrap(),
                None,
                "{garbled:?}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 a\n");
        }
    }
}
