//! Boot control for the update service (the service table's `boot_control = true`), prepared
//! as root because the service is not. PID 1 runs this before the service starts:
//!
//! `carapace-disk --boot-control --esp <PARTUUID> --slot <booted a|b> --owner <uid>:<gid>`
//!
//! - The ESP is mounted at /boot/efi (vfat, read-write, every file the service's, umask 0077,
//!   nosuid, nodev, noexec) and left mounted for the boot; PID 1 unmounts it at shutdown. The
//!   service writes the other slot's kernel, initrd and boot loader entry there.
//! - The inactive slot's root partition device becomes the service's (0600): it writes the
//!   update there. The booted slot's becomes readable by its group (root, gid, 0440): it reads
//!   the chunks an update shares with the running version from it. Nothing else of the disk
//!   (the GPT, /data) becomes readable.
//! - /run/carapace/slot-devices (root, gid, 0440) says which device is which slot, with the
//!   PARTUUIDs: the service cannot read the GPT to find them itself.
//! - Where each slot has its own FAT boot partition (a Raspberry Pi 5: `boot-a`, `boot-b`),
//!   both are mounted like the ESP under /run/carapace (`slot_boot_mount_point`): the inactive
//!   slot's read-write (the service writes the update's boot files and command line there),
//!   the booted slot's read-only (the update reads unchanged chunks from it; nothing writes it).
//!   p1, which the ESP's place takes on a Pi, holds autoboot.txt.

use std::ffi::CString;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::time::Duration;

use board_support::block_devices::{self, Partition};
use board_support::slot_devices::slot_boot_mount_point;
use board_support::{
    ESP_MOUNT_POINT, PiBootPartition, SLOT_DEVICES_PATH, Slot, SlotDevice, SlotDevices, atomic_file,
};
use rustix::mount::MountFlags;

use crate::error::Error;

/// The ESP is on the disk the box booted from; it is there already.
const WAIT_FOR_ESP: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
pub struct BootControlArgs {
    pub esp_partuuid: String,
    /// The slot this system booted from.
    pub slot: Slot,
    pub uid: u32,
    pub gid: u32,
}

/// `--boot-control --esp <PARTUUID> --slot <a|b> --owner <uid>:<gid>`.
pub fn parse_args(args: &[String]) -> Option<BootControlArgs> {
    match args {
        [mode, esp_flag, esp, slot_flag, slot, owner_flag, owner]
            if mode == "--boot-control"
                && esp_flag == "--esp"
                && slot_flag == "--slot"
                && owner_flag == "--owner" =>
        {
            let (uid, gid) = owner.split_once(':')?;
            Some(BootControlArgs {
                esp_partuuid: esp.clone(),
                slot: slot.parse().ok()?,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Does all three steps, stopping at the first that fails.
pub fn prepare(args: &BootControlArgs) -> Result<SlotDevices, Error> {
    let esp = block_devices::wait_for_partition(&args.esp_partuuid, WAIT_FOR_ESP)
        .map_err(Error::NotFound)?;
    mount_esp(&esp.dev_path, args.uid, args.gid)?;
    let slot_partition = |slot| {
        block_devices::slot_partition(&args.esp_partuuid, slot).map_err(Error::SlotPartition)
    };
    let booted = slot_partition(args.slot)?;
    let inactive = slot_partition(args.slot.other())?;
    hand_over(&inactive.dev_path, args.uid, args.gid, 0o600)?;
    hand_over(&booted.dev_path, 0, args.gid, 0o440)?;
    let mut devices = SlotDevices {
        booted: slot_device(args.slot, &booted),
        inactive: slot_device(args.slot.other(), &inactive),
    };
    devices.booted.boot_partition = mount_slot_boot(args, args.slot, MountFlags::RDONLY)?;
    devices.inactive.boot_partition =
        mount_slot_boot(args, args.slot.other(), MountFlags::empty())?;
    write_slot_devices(&devices, Path::new(SLOT_DEVICES_PATH), args.gid)?;
    Ok(devices)
}

/// The result line (stderr, which PID 1 puts on the console).
pub fn summary(devices: &SlotDevices, args: &BootControlArgs) -> String {
    let (booted, inactive) = (&devices.booted, &devices.inactive);
    format!(
        "boot control ready esp={ESP_MOUNT_POINT} owner={}:{} booted={}:{} inactive={}:{}",
        args.uid, args.gid, booted.slot, booted.device, inactive.slot, inactive.device
    )
}

fn mount_esp(device: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    mount_fat(
        device,
        Path::new(ESP_MOUNT_POINT),
        uid,
        gid,
        MountFlags::empty(),
    )
}

/// Mounts `slot`'s own boot partition, if the disk has one, and says where.
fn mount_slot_boot(
    args: &BootControlArgs,
    slot: Slot,
    flags: MountFlags,
) -> Result<Option<PiBootPartition>, Error> {
    let Some(partition) = block_devices::slot_boot_partition(&args.esp_partuuid, slot)
        .map_err(Error::SlotPartition)?
    else {
        return Ok(None);
    };
    let target = Path::new(slot_boot_mount_point(slot));
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?;
    mount_fat(&partition.dev_path, target, args.uid, args.gid, flags)?;
    Ok(Some(PiBootPartition {
        number: partition.number,
        dir: target.to_path_buf(),
    }))
}

/// A FAT file system whose files are all the service's, nothing on it executable.
fn mount_fat(
    device: &Path,
    target: &Path,
    uid: u32,
    gid: u32,
    flags: MountFlags,
) -> Result<(), Error> {
    let options = CString::new(format!("uid={uid},gid={gid},umask=0077"))
        .map_err(|e| Error::io("mount on", target, e.into()))?;
    let flags = flags | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount(device, target, "vfat", flags, options.as_c_str())
        .map_err(|e| Error::io("mount on", target, e.into()))
}

/// The mode first: a node handed to root with group read must not pass through a moment in
/// which the group may write it.
fn hand_over(node: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(node, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", node, e))?;
    chown(node, Some(uid), Some(gid)).map_err(|e| Error::io("chown", node, e))
}

fn slot_device(slot: Slot, partition: &Partition) -> SlotDevice {
    SlotDevice {
        boot_partition: None,
        slot,
        device: partition.dev_path.to_string_lossy().into_owned(),
        partuuid: partition.partuuid.clone(),
    }
}

fn write_slot_devices(devices: &SlotDevices, path: &Path, gid: u32) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    atomic_file::write(path, devices.render().as_bytes(), 0o440)
        .map_err(|e| Error::io("write", path, e))?;
    chown(path, Some(0), Some(gid)).map_err(|e| Error::io("chown", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn arguments() {
        let args =
            parse_args(&words("--boot-control --esp e --slot b --owner 1200:1201")).expect("args");
        assert_eq!(
            args,
            BootControlArgs {
                esp_partuuid: "e".into(),
                slot: Slot::B,
                uid: 1200,
                gid: 1201
            }
        );
        for bad in [
            "--boot-control --esp e --slot c --owner 1200:1201",
            "--boot-control --esp e --slot a --owner 1200",
            "--boot-control --esp e --owner 1200:1201 --slot a",
            "--boot-control --esp e --slot a",
        ] {
            assert!(parse_args(&words(bad)).is_none(), "{bad}");
        }
    }

    /// As an unprivileged test, "handing over" to our own uid and gid: the modes are what count.
    #[test]
    fn nodes_get_the_mode_and_owner_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = dir.path().join("vda3");
        std::fs::write(&node, b"").expect("node");
        let me = rustix::process::getuid().as_raw();
        let group = rustix::process::getgid().as_raw();
        for mode in [0o600, 0o440] {
            hand_over(&node, me, group, mode).expect("hand over");
            let meta = std::fs::metadata(&node).expect("meta");
            assert_eq!(meta.mode() & 0o7777, mode);
            assert_eq!((meta.uid(), meta.gid()), (me, group));
        }
    }

    #[test]
    fn the_slot_devices_file_reads_back_for_the_service() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("carapace/slot-devices");
        let devices = SlotDevices {
            booted: SlotDevice {
                slot: Slot::A,
                device: "/dev/vda2".into(),
                boot_partition: None,
                partuuid: "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9".into(),
            },
            inactive: SlotDevice {
                slot: Slot::B,
                device: "/dev/vda3".into(),
                boot_partition: None,
                partuuid: "11111111-2222-3333-4444-555555555555".into(),
            },
        };
        let group = rustix::process::getgid().as_raw();
        // chown to uid 0 needs root: as a user the write itself must still have happened.
        let written = write_slot_devices(&devices, &path, group);
        let text = std::fs::read_to_string(&path).expect("written");
        assert_eq!(SlotDevices::parse(&text).expect("parse"), devices);
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.mode() & 0o777, 0o440);
        if rustix::process::getuid().is_root() {
            written.expect("as root");
            assert_eq!((meta.uid(), meta.gid()), (0, group));
        }
        let args = BootControlArgs {
            esp_partuuid: "e".into(),
            slot: Slot::A,
            uid: 1200,
            gid: 1200,
        };
        assert_eq!(
            summary(&devices, &args),
            "boot control ready esp=/boot/efi owner=1200:1200 booted=a:/dev/vda2 \
             inactive=b:/dev/vda3"
        );
    }
}
