//! Once the box is ready, the booted slot stops being a trial: systemd-boot stops counting
//! its boots down, so a later reset does not fall back to the other slot. Failing here only
//! means the slot stays on trial; it is logged, not fatal.

use std::time::Duration;

use board_support::{BootControl, Slot, SystemdBoot, block_devices};
use rustix::mount::MountFlags;

use crate::error::{Error, Result};
use crate::mounts;

pub const ESP_MOUNT_POINT: &str = "/boot/efi";
/// The ESP was on the same disk as root and data, so it is there already.
const WAIT_FOR_ESP: Duration = Duration::from_secs(2);

pub fn commit_if_trial(esp_partuuid: &str, slot: Slot) {
    if let Err(err) = commit(esp_partuuid, slot) {
        log_error!("slot {slot} not committed: {err}");
    }
}

fn commit(esp_partuuid: &str, slot: Slot) -> Result<()> {
    let esp =
        block_devices::wait_for_partition(esp_partuuid, WAIT_FOR_ESP).map_err(Error::Partition)?;
    let device = esp.dev_path.to_string_lossy().into_owned();
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mounts::mount(&device, ESP_MOUNT_POINT, "vfat", flags, Some("umask=0077"))?;
    let outcome = commit_on_mounted_esp(slot);
    let unmounted = mounts::unmount(ESP_MOUNT_POINT);
    outcome?;
    unmounted
}

fn commit_on_mounted_esp(slot: Slot) -> Result<()> {
    let mut boot = SystemdBoot::new(ESP_MOUNT_POINT, slot);
    if boot.is_trial().map_err(to_error)? {
        boot.commit().map_err(to_error)?;
        log_info!("slot {slot} committed");
    }
    Ok(())
}

fn to_error(err: board_support::Error) -> Error {
    Error::Invalid(err.to_string())
}
