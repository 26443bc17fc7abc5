//! The owner's one way to erase /data: a file named `carapace-factory-reset` in the root of
//! the ESP (FAT, readable and writable from any computer). The helper mounts the ESP on a
//! private mount point just long enough to look for it, and again to delete it once /data
//! was formatted; a power cut in between leaves the request in place, so the reset is
//! finished on the next boot.

use std::path::Path;
use std::time::Duration;

use board_support::block_devices;
use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::Error;

pub const FILE_NAME: &str = "carapace-factory-reset";
const MOUNT_POINT: &str = "/run/carapace-disk-esp";
/// The ESP is on the disk the box booted from; it is there already.
const WAIT_FOR_ESP: Duration = Duration::from_secs(2);

/// Whether the owner asked for a reset.
pub fn requested(esp_partuuid: &str) -> Result<bool, Error> {
    with_esp_mounted(esp_partuuid, |esp| Ok(esp.join(FILE_NAME).exists()))
}

/// Deletes the request durably: the file, then its directory synced, then the unmount.
pub fn done(esp_partuuid: &str) -> Result<(), Error> {
    with_esp_mounted(esp_partuuid, |esp| {
        let request = esp.join(FILE_NAME);
        std::fs::remove_file(&request).map_err(|e| Error::io("delete", &request, e))?;
        let dir = std::fs::File::open(esp).map_err(|e| Error::io("open", esp, e))?;
        dir.sync_all().map_err(|e| Error::io("sync", esp, e))
    })
}

pub fn with_esp_mounted<T>(
    esp_partuuid: &str,
    work: impl FnOnce(&Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let esp =
        block_devices::wait_for_partition(esp_partuuid, WAIT_FOR_ESP).map_err(Error::NotFound)?;
    let target = Path::new(MOUNT_POINT);
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount(&esp.dev_path, target, "vfat", flags, c"umask=0077")
        .map_err(|e| Error::io("mount the ESP on", target, e.into()))?;
    let result = work(target);
    let unmounted = rustix::mount::unmount(target, UnmountFlags::empty())
        .map_err(|e| Error::io("unmount the ESP from", target, e.into()));
    let value = result?;
    unmounted.map(|()| value)
}
