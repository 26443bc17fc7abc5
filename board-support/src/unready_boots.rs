//! The count of boots in a row that never reached the ready line, kept in one small file on
//! /data (`/data/carapace/unready-boots`). PID 1 counts each boot before any service starts
//! and clears the count at the ready line; after `LIMIT` such boots the next one comes up
//! degraded instead of letting a fault that survives resets (a corrupt identity that makes
//! agentd crash-loop until the watchdog resets the box) loop for ever. The degraded boot
//! starts the count again, so a later restart tries once more.

use std::io;
use std::path::Path;

pub const PATH: &str = "/data/carapace/unready-boots";
pub const LIMIT: u32 = 3;

/// Counts this boot at `path`: `Ok(Some(n))` when the `n` boots before it never became ready
/// and this one should be degraded. A missing or unreadable count is 0.
pub fn count_this_boot(path: &Path) -> io::Result<Option<u32>> {
    let before: u32 = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let degrade = before >= LIMIT;
    store(path, if degrade { 0 } else { before + 1 })?;
    Ok(degrade.then_some(before))
}

/// The box became ready: the count starts again.
pub fn clear(path: &Path) -> io::Result<()> {
    store(path, 0)
}

fn store(path: &Path, count: u32) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic_file::write(path, format!("{count}\n").as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_after_limit_unready_ones_is_degraded_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carapace/unready-boots");
        for _ in 0..LIMIT {
            assert_eq!(count_this_boot(&path).unwrap(), None);
        }
        assert_eq!(count_this_boot(&path).unwrap(), Some(LIMIT));
        assert_eq!(
            count_this_boot(&path).unwrap(),
            None,
            "the count starts over"
        );
    }

    #[test]
    fn a_ready_boot_clears_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        for _ in 0..LIMIT {
            count_this_boot(&path).unwrap();
            clear(&path).unwrap();
        }
        assert_eq!(count_this_boot(&path).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
    }

    #[test]
    fn a_garbled_count_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unready-boots");
        std::fs::write(&path, "\u{0}\u{1}junk").unwrap();
        assert_eq!(count_this_boot(&path).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
    }
}
