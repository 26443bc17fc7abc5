//! Boots that never reached the ready line, counted on /data, so a fault that survives a
//! reset (a corrupt identity file that makes agentd crash-loop, and the watchdog then resets
//! the box) ends in a degraded boot the owner can reach instead of resets for ever. The count
//! goes up once per boot before any service starts and back to 0 at the ready line; after
//! LIMIT boots without ready, the next boot holds the services that keep state on /data and
//! starts the count again, so a restart later tries once more.

use std::path::Path;

const FILE: &str = "/data/carapace/unready-boots";
pub const LIMIT: u32 = 3;

/// Counts this boot; `Some(n)` when the `n` boots before it never became ready and this one
/// should be degraded. A count that cannot be read or written is logged and counts as 0.
pub fn count_this_boot() -> Option<u32> {
    let before: u32 = std::fs::read_to_string(FILE)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let degrade = before >= LIMIT;
    store(if degrade { 0 } else { before + 1 });
    degrade.then_some(before)
}

/// The box became ready: the count starts again.
pub fn reached_ready() {
    store(0);
}

fn store(count: u32) {
    let path = Path::new(FILE);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            board_support::atomic_file::write(path, format!("{count}\n").as_bytes(), 0o600)
        });
    if let Err(err) = written {
        log_error!("{FILE} not written: {err}");
    }
}
