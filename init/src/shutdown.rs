//! The end of every boot: once the services are gone, flush and unmount /data so the next
//! boot finds it clean, then power off or reboot. The hardware watchdog keeps being petted
//! so a slow unmount is not cut short; if unmounting hangs for good, it resets the box.

use std::time::Duration;

use board_support::ESP_MOUNT_POINT;
use rustix::mount::MountFlags;
use rustix::system::RebootCommand;

use crate::data_mount::MOUNT_POINT as DATA;
use crate::error::{Context, Result};
use crate::signals::Action;
use crate::watchdog::Watchdog;
use crate::{console, mounts};

/// Unmounts and syncs, then powers off or reboots. Returns only if the kernel refused.
pub fn finish(action: Action, mut watchdog: Option<Watchdog>) -> Result<()> {
    let mut pet = || {
        if let Some(watchdog) = &mut watchdog {
            watchdog.keepalive();
        }
    };
    pet();
    rustix::fs::sync();
    pet();
    if mounts::is_mount_point(ESP_MOUNT_POINT)
        && let Err(err) = mounts::unmount(ESP_MOUNT_POINT)
    {
        log_error!("{err}");
    }
    // A degraded boot never mounted /data.
    if !mounts::is_mount_point(DATA) {
        log_info!("data not mounted (degraded)");
    } else {
        unmount_data();
    }
    pet();
    rustix::fs::sync();
    // The last lines reach the serial line before the machine goes away.
    console::drain(Duration::from_secs(2));
    let command = match action {
        Action::PowerOff => RebootCommand::PowerOff,
        Action::Reboot => RebootCommand::Restart,
    };
    rustix::system::reboot(command).context(|| format!("{} (reboot system call)", action.name()))
}

fn unmount_data() {
    match mounts::unmount(DATA) {
        Ok(()) => log_info!("data unmounted clean=yes"),
        Err(err) => {
            log_error!("{err}");
            // Read-only still leaves the journal clean for the next boot.
            let remount = MountFlags::RDONLY;
            match rustix::mount::mount_remount(DATA, remount, "") {
                Ok(()) => log_info!("data remounted read-only"),
                Err(err) => log_error!("remount /data read-only: {err}"),
            }
        }
    }
}
