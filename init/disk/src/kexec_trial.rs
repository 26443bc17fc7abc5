//! `carapace-disk --kexec-trial`: loads a Raspberry Pi's trial slot with kexec. PID 1 runs it at
//! the end of a shutdown the update service asked for with `REBOOT=kexec` (under a kernel
//! without the tryboot hook, board_support::PiTrialStart::Kexec), while the boot partitions are
//! still mounted, then calls reboot(LINUX_REBOOT_CMD_KEXEC); if this failed, that call is
//! refused and the box restarts through the firmware into the committed slot.
//!
//! What is loaded comes from the disk, not from the request: the kernel, initramfs and command
//! line the firmware would boot from autoboot.txt's `[tryboot]` partition
//! (`PiTryboot::trial_reboot`). It runs as root because kexec_load needs CAP_SYS_BOOT and
//! kexec-tools reads the memory map from /proc/iomem, which shows addresses to CAP_SYS_ADMIN
//! only; the update service keeps neither.

use std::process::Command;

use board_support::block_devices;
use board_support::boot_control::{KEXEC_PROGRAM, TrialReboot};
use board_support::slot_devices::slot_boot_mount_point;
use board_support::{BootParams, ESP_MOUNT_POINT, PiBootPartition, PiTrialStart, PiTryboot, Slot};

use crate::error::Error;

pub const FLAG: &str = "--kexec-trial";

/// Loads the trial; says what it loaded.
pub fn load() -> Result<String, Error> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| Error::io("read", "/proc/cmdline", e))?;
    let params = BootParams::parse(&cmdline).map_err(|e| Error::KexecTrial(e.to_string()))?;
    let partition = |slot: Slot| {
        let found = block_devices::slot_boot_partition(&params.esp_partuuid, slot)
            .map_err(Error::SlotPartition)?
            .ok_or_else(|| {
                Error::KexecTrial(format!(
                    "the disk has no {} partition",
                    slot.boot_partition_name()
                ))
            })?;
        Ok::<_, Error>(PiBootPartition {
            number: found.number,
            dir: slot_boot_mount_point(slot).into(),
        })
    };
    let boot = PiTryboot::new(
        ESP_MOUNT_POINT,
        partition(Slot::A)?,
        partition(Slot::B)?,
        params.slot,
        PiTrialStart::Kexec,
    )
    .map_err(|e| Error::KexecTrial(e.to_string()))?;
    let trial = boot
        .trial_reboot()
        .map_err(|e| Error::KexecTrial(e.to_string()))?;
    let Some(TrialReboot::Kexec {
        kernel,
        initrd,
        cmdline,
    }) = trial
    else {
        return Err(Error::KexecTrial(
            "autoboot.txt's [tryboot] names the committed slot: no trial is installed".into(),
        ));
    };
    let output = Command::new(KEXEC_PROGRAM)
        .arg("--load")
        .arg(&kernel)
        .arg(format!("--initrd={}", initrd.display()))
        .arg(format!("--command-line={cmdline}"))
        .output()
        .map_err(|source| Error::Spawn {
            program: KEXEC_PROGRAM,
            source,
        })?;
    if !output.status.success() {
        return Err(Error::KexecTrial(format!(
            "{KEXEC_PROGRAM} --load {} failed ({}): {}",
            kernel.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(format!("kexec trial loaded: {}", kernel.display()))
}
