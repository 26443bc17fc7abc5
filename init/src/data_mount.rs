//! Mounting /data is PID 1's part of the disk work: the helper (disk_helper.rs) decided what
//! the partition holds; PID 1 mounts what it declared ready and says so on the console, or
//! passes on why /data is degraded.

use board_support::data_outcome::yes_no;
use board_support::{DataOutcome, DegradedReason};
use rustix::mount::MountFlags;

use crate::mounts;

pub const MOUNT_POINT: &str = "/data";

/// Why /data is not there, for degraded.rs.
pub struct Degraded {
    pub reason: DegradedReason,
    pub detail: String,
}

pub fn mount(outcome: DataOutcome) -> Result<(), Degraded> {
    let (device, first_boot, clean, repaired, size_mib) = match outcome {
        DataOutcome::Ready {
            device,
            first_boot,
            clean,
            repaired,
            size_mib,
        } => (device, first_boot, clean, repaired, size_mib),
        DataOutcome::Degraded { reason, detail } => return Err(Degraded { reason, detail }),
    };
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if let Err(err) = mounts::mount(&device, MOUNT_POINT, "ext4", flags, None) {
        return Err(Degraded {
            reason: DegradedReason::MountFailed,
            detail: err.to_string(),
        });
    }
    log_info!(
        "data mounted first_boot={} clean={} size_mib={size_mib} repaired={}",
        yes_no(first_boot),
        yes_no(clean),
        yes_no(repaired)
    );
    Ok(())
}
