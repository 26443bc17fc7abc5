//! Runs the disk helper (/usr/sbin/carapace-disk, init/disk) as a one-shot child
//! (oneshot.rs) and reads its one result line. A helper that fails, crashes or overruns means
//! /data is degraded.

use std::time::Duration;

use board_support::{BootParams, DataOutcome, DegradedReason};

use crate::service_table::Service;

use crate::oneshot;

pub const HELPER: &str = "/usr/sbin/carapace-disk";
/// Moving one small file off the ESP.
const MOVE_DEADLINE: Duration = Duration::from_secs(30);
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

/// Has the helper move the owner-settings file from the ESP into the state directory of the
/// service that reads it (`owner_settings = true`), once /data is mounted. A failure leaves the
/// file on the ESP for the next boot; it is logged and the boot goes on.
pub fn move_owner_settings(params: &BootParams, services: &[Service]) {
    let Some(service) = services.iter().find(|s| s.entry.owner_settings) else {
        return;
    };
    let Some(dir) = service.state_directory() else {
        return;
    };
    let owner = format!("{}:{}", service.entry.uid, service.entry.gid);
    let args = [
        "--move-owner-settings",
        "--esp",
        &params.esp_partuuid,
        "--to",
        &dir,
        "--owner",
        &owner,
    ];
    match oneshot::run(HELPER, &args, MOVE_DEADLINE, "carapace-disk") {
        Ok((_, status)) if status.success() => {}
        Ok((_, status)) => log_error!("moving the owner settings off the ESP failed ({status})"),
        Err(err) => log_error!("moving the owner settings off the ESP: {err}"),
    }
}
