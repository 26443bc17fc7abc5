//! Boots that never reached the ready line, counted on /data (board-support's
//! unready_boots.rs says why); a failure to count is logged, never fatal.

use std::path::Path;

use board_support::Slot;
use board_support::unready_boots::{self, PATH};

/// `Some(n)`: the `n` boots of `slot` before this one never became ready; this one is
/// degraded.
pub fn count_this_boot(slot: Slot) -> Option<u32> {
    unready_boots::count_this_boot(Path::new(PATH), slot).unwrap_or_else(|err| {
        log_error!("{PATH} not written: {err}");
        None
    })
}

pub fn reached_ready(slot: Slot) {
    if let Err(err) = unready_boots::clear(Path::new(PATH), slot) {
        log_error!("{PATH} not written: {err}");
    }
}
