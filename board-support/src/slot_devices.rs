//! /run/carapace/slot-devices: which partition holds which slot, for the update service (the
//! service with `boot_control = true`). It runs unprivileged and so cannot read the disk's GPT
//! (the whole disk is root's, /data's secrets are on it); the disk helper, which runs as root
//! before the service starts, looks the slots up ([`crate::block_devices::slot_partition`]),
//! hands the service their device nodes and writes down what it handed over here:
//!
//! ```toml
//! [booted]                  # read-only for the service: root, its group, 0440
//! slot = "a"
//! device = "/dev/vda2"
//! partuuid = "…"
//! [inactive]                # the slot an update writes: the service's, 0600
//! slot = "b"
//! device = "/dev/vda3"
//! partuuid = "…"           # what the new entry's carapace.root= names
//! ```
//!
//! On a disk with a boot partition per slot (the Raspberry Pi 5), each slot also says where
//! its boot partition is mounted (`[booted.boot_partition]` read-only, `[inactive.boot_partition]`
//! the service's) and its number on the disk, which autoboot.txt names.
//! The helper writes it with `render`, the service reads it with `parse`.

use serde::{Deserialize, Serialize};

use crate::boot_control::PiBootPartition;
use crate::error::Error;
use crate::slot::Slot;

/// On the /run tmpfs: written again on every boot, never stale across one.
pub const SLOT_DEVICES_PATH: &str = "/run/carapace/slot-devices";

/// Where the disk helper mounts a slot's own boot partition, where the board has one: on /run,
/// because the verified root has no place for it.
pub const fn slot_boot_mount_point(slot: Slot) -> &'static str {
    match slot {
        Slot::A => "/run/carapace/boot-a",
        Slot::B => "/run/carapace/boot-b",
    }
}

/// The FAT file systems the disk helper mounts for the update service, which PID 1 unmounts
/// at shutdown: the ESP (p1 on a Pi) and a Pi's two slot boot partitions.
pub const FAT_MOUNT_POINTS: [&str; 3] = [
    crate::ESP_MOUNT_POINT,
    slot_boot_mount_point(Slot::A),
    slot_boot_mount_point(Slot::B),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDevices {
    /// The slot this system booted from.
    pub booted: SlotDevice,
    /// The other slot: the one an update writes.
    pub inactive: SlotDevice,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDevice {
    pub slot: Slot,
    /// The partition's device node, e.g. `/dev/vda3`.
    pub device: String,
    /// Lower-case and hyphenated, as `carapace.root=` takes it.
    pub partuuid: String,
    /// The slot's own boot partition, where the board has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_partition: Option<PiBootPartition>,
}

impl SlotDevices {
    /// Reads and checks [`SLOT_DEVICES_PATH`].
    pub fn load() -> Result<SlotDevices, Error> {
        let text = std::fs::read_to_string(SLOT_DEVICES_PATH)
            .map_err(|err| Error::io("read", SLOT_DEVICES_PATH, err))?;
        SlotDevices::parse(&text)
    }

    /// Slot a's and slot b's own boot partitions, where the board has them.
    pub fn boot_partitions(&self) -> Option<(PiBootPartition, PiBootPartition)> {
        let booted = self.booted.boot_partition.clone()?;
        let inactive = self.inactive.boot_partition.clone()?;
        Some(match self.booted.slot {
            Slot::A => (booted, inactive),
            Slot::B => (inactive, booted),
        })
    }

    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<SlotDevices, Error> {
        let bad = |message: String| Error::SlotDevices { message };
        let devices: SlotDevices = toml::from_str(text)
            .map_err(|err| bad(err.to_string().trim_end().replace('\n', " ")))?;
        if devices.inactive.slot != devices.booted.slot.other() {
            return Err(bad(format!(
                "booted and inactive are both slot {}",
                devices.booted.slot
            )));
        }
        for (which, device) in [("booted", &devices.booted), ("inactive", &devices.inactive)] {
            let name = device.device.strip_prefix("/dev/").unwrap_or_default();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(format!(
                    "{which} device {:?} is not a device node under /dev",
                    device.device
                )));
            }
            if let Some(boot) = &device.boot_partition
                && !boot.dir.is_absolute()
            {
                return Err(bad(format!(
                    "{which} boot partition's mount point {:?} is not absolute",
                    boot.dir
                )));
            }
            if !is_partuuid(&device.partuuid) {
                return Err(bad(format!(
                    "{which} partuuid {:?} is not a lower-case hyphenated GUID",
                    device.partuuid
                )));
            }
        }
        if devices.booted.boot_partition.is_some() != devices.inactive.boot_partition.is_some() {
            return Err(bad("only one slot has a boot partition".into()));
        }
        Ok(devices)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower-case hex, as the kernel prints PARTUUIDs.
fn is_partuuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> SlotDevices {
        SlotDevices {
            booted: SlotDevice {
                slot: Slot::A,
                device: "/dev/vda2".into(),
                partuuid: "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9".into(),
                boot_partition: None,
            },
            inactive: SlotDevice {
                slot: Slot::B,
                device: "/dev/nvme0n1p3".into(),
                partuuid: "11111111-2222-3333-4444-555555555555".into(),
                boot_partition: None,
            },
        }
    }

    #[test]
    fn round_trips() {
        let text = devices().render();
        assert!(text.contains("[inactive]\nslot = \"b\"\n"), "{text}");
        assert_eq!(SlotDevices::parse(&text).unwrap(), devices());
    }

    #[test]
    fn a_pi_names_each_slots_boot_partition() {
        let mut pi = devices();
        pi.booted.boot_partition = Some(PiBootPartition {
            number: 2,
            dir: "/run/carapace/boot-a".into(),
        });
        pi.inactive.boot_partition = Some(PiBootPartition {
            number: 3,
            dir: "/run/carapace/boot-b".into(),
        });
        let text = pi.render();
        assert!(
            text.contains("[inactive.boot_partition]\nnumber = 3\n"),
            "{text}"
        );
        assert_eq!(SlotDevices::parse(&text).unwrap(), pi);
    }

    #[test]
    fn what_does_not_name_two_slots_and_their_partitions_is_refused() {
        type Spoil = fn(&mut SlotDevices);
        let cases: [(&str, Spoil); 7] = [
            ("both slot a", |d| d.inactive.slot = Slot::A),
            ("not a device node", |d| d.booted.device = "vda2".into()),
            ("not a device node", |d| {
                d.inactive.device = "/dev/../etc/x".into()
            }),
            ("not a lower-case", |d| {
                d.booted.partuuid = d.booted.partuuid.to_uppercase()
            }),
            ("not a lower-case", |d| d.inactive.partuuid = "1234".into()),
            ("only one slot has a boot partition", |d| {
                d.inactive.boot_partition = Some(PiBootPartition {
                    number: 3,
                    dir: "/run/b".into(),
                })
            }),
            ("not absolute", |d| {
                let boot = |number| {
                    Some(PiBootPartition {
                        number,
                        dir: "run/b".into(),
                    })
                };
                d.booted.boot_partition = boot(2);
                d.inactive.boot_partition = boot(3);
            }),
        ];
        for (reason, spoil) in cases {
            let mut bad = devices();
            spoil(&mut bad);
            let err = SlotDevices::parse(&bad.render()).unwrap_err().to_string();
            assert!(
                err.contains(reason) && err.contains(SLOT_DEVICES_PATH),
                "{reason}: {err}"
            );
        }
        let err = SlotDevices::parse("[booted]\nslot = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
