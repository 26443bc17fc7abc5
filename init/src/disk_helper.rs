//! Runs the disk helper (/usr/sbin/carapace-disk, init/disk) as a one-shot child
//! (oneshot.rs) and reads its one result line. A helper that fails, crashes or overruns means
//! /data is degraded.

use std::time::Duration;

use board_support::{BootParams, DataOutcome, DegradedReason};

use crate::service_table::Service;

use crate::oneshot;

pub const HELPER: &str = "/usr/sbin/carapace-disk";
/// Moving one small file off the ESP; mounting it and handing over two device nodes.
const QUICK_DEADLINE: Duration = Duration::from_secs(30);
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
    run_quick(&args, "moving the owner settings off the ESP");
}

/// Has the helper prepare boot control for the update service (`boot_control = true`): the
/// ESP mounted at /boot/efi for it, the slots' partition devices handed to it, and
/// /run/carapace/slot-devices saying which is which. A failure is logged and the service
/// starts anyway: it reports what it cannot do, and the box runs on without updates.
pub fn prepare_boot_control(params: &BootParams, services: &[Service]) {
    let Some(service) = services.iter().find(|s| s.entry.boot_control) else {
        return;
    };
    let owner = format!("{}:{}", service.entry.uid, service.entry.gid);
    let slot = params.slot.to_string();
    let args = [
        "--boot-control",
        "--esp",
        &params.esp_partuuid,
        "--slot",
        &slot,
        "--owner",
        &owner,
    ];
    run_quick(&args, &format!("boot control for {}", service.name()));
}

/// A helper run whose result is its exit status; its own lines say the details (also the
/// kexec_trial.rs load a shutdown into a Raspberry Pi's trial runs).
pub fn run_quick(args: &[&str], what: &str) {
    match oneshot::run(HELPER, args, QUICK_DEADLINE, "carapace-disk") {
        Ok((_, status)) if status.success() => {}
        Ok((_, status)) => log_error!("{what} failed ({status})"),
        Err(err) => log_error!("{what}: {err}"),
    }
}
