//! Runs the disk helper (/usr/sbin/carapace-disk, init/disk) as a one-shot child
//! (oneshot.rs) and reads its one result line. A helper that fails, crashes or overruns means
//! /data is degraded.

use std::time::Duration;

use board_support::{BootParams, DataOutcome, DegradedReason};

use crate::oneshot;

pub const HELPER: &str = "/usr/sbin/carapace-disk";
/// mke2fs of a large SD card with lazy init, or e2fsck of a damaged /data, fits well inside;
/// a helper still running after this is stuck on a failing disk.
const DEADLINE: Duration = Duration::from_secs(300);

pub fn run(params: &BootParams) -> DataOutcome {
    let failed = |detail: String| DataOutcome::Degraded {
        reason: DegradedReason::HelperFailed,
        detail,
    };
    let args = [
        "--data",
        &params.data_partuuid,
        "--esp",
        &params.esp_partuuid,
    ];
    let (stdout, status) = match oneshot::run(HELPER, &args, DEADLINE, "carapace-disk") {
        Ok(finished) => finished,
        Err(err) => return failed(err),
    };
    let text = String::from_utf8_lossy(&stdout);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => DataOutcome::parse(line).unwrap_or_else(|err| failed(err.to_string())),
        None => failed(format!("{HELPER} printed no result ({status})")),
    }
}
