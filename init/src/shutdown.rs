//! The end of every boot: once the services are gone, flush and unmount /data so the next
//! boot finds it clean, then power off or reboot. The hardware watchdog keeps being petted
//! so a slow unmount is not cut short; if unmounting hangs for good, it resets the box.

use std::time::Duration;

use board_support::slot_devices::FAT_MOUNT_POINTS;
use board_support::{boot_control::TRYBOOT_REBOOT_ARGUMENT, restart2};
use rustix::mount::MountFlags;
use rustix::system::RebootCommand;

use crate::data_mount::MOUNT_POINT as DATA;
use crate::error::{Context, Result};
use crate::signals::Action;
use crate::watchdog::Watchdog;
use crate::{console, disk_helper, mounts};

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
    // The FAT file systems the update service writes (a Pi's slot boot partitions besides).
    if action == Action::RebootKexec {
        disk_helper::run_quick(&["--kexec-trial"], "loading the trial slot for kexec");
    }
    for fat in FAT_MOUNT_POINTS {
        if mounts::is_mount_point(fat)
            && let Err(err) = mounts::unmount(fat)
        {
            log_error!("{err}");
        }
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
    // A trial's start; refused (nothing loaded for kexec), a plain restart boots the committed
    // slot instead.
    let _ = match action {
        Action::RebootTryboot => Err(restart2::restart_with_argument(TRYBOOT_REBOOT_ARGUMENT)),
        Action::RebootKexec => rustix::system::reboot(RebootCommand::Kexec),
        Action::PowerOff | Action::Reboot => Ok(()),
    }
    .inspect_err(|err| log_error!("{} (reboot system call): {err}; restarting", action.name()));
    let command = match action {
        Action::PowerOff => RebootCommand::PowerOff,
        _ => RebootCommand::Restart,
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
