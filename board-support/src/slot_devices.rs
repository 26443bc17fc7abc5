//! What the disk helper hands the update service about the two slots' partitions
//! (`/run/carapace/slot-devices.toml`): finding a slot by its GPT name means reading the whole
//! disk's partition table, which only root may read (the disk also holds /data), so the
//! helper, which runs as root before the update service starts, finds both and writes this
//! file; the update service (its own uid) only reads it. The helper writes it with `render`,
//! the service reads it with `parse`.
//!
//! ```toml
//! [booted]
//! slot = "a"
//! device = "/dev/vda2"
//! partuuid = "6f1c…"
//! size_bytes = 1073741824
//!
//! [other]
//! slot = "b"
//! …
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::slot::Slot;

pub const SLOT_DEVICES_PATH: &str = "/run/carapace/slot-devices.toml";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDevice {
    pub slot: Slot,
    /// The partition's device node, e.g. /dev/vda3.
    pub device: PathBuf,
    /// Its GPT unique GUID, lower-case, as on the kernel command line.
    pub partuuid: String,
    pub size_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDevices {
    /// The slot this boot runs (the update service reads unchanged chunks from it).
    pub booted: SlotDevice,
    /// The slot an update is written to.
    pub other: SlotDevice,
}

impl SlotDevices {
    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<SlotDevices, Error> {
        let devices: SlotDevices = toml::from_str(text).map_err(|err| Error::SlotDevices {
            message: err.to_string().trim_end().replace('\n', " "),
        })?;
        if devices.booted.slot == devices.other.slot {
            return Err(Error::SlotDevices {
                message: format!("both entries are slot {}", devices.booted.slot),
            });
        }
        Ok(devices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(slot: Slot, node: &str) -> SlotDevice {
        SlotDevice {
            slot,
            device: PathBuf::from(node),
            partuuid: "0e3b2f4c-7d1a-4c6e-9b2f-3a4d5e6f7a8b".into(),
            size_bytes: 1 << 30,
        }
    }

    #[test]
    fn rendered_devices_parse_back() {
        let devices = SlotDevices {
            booted: device(Slot::A, "/dev/vda2"),
            other: device(Slot::B, "/dev/vda3"),
        };
        assert_eq!(SlotDevices::parse(&devices.render()).unwrap(), devices);
    }

    #[test]
    fn two_entries_for_one_slot_are_refused() {
        let devices = SlotDevices {
            booted: device(Slot::A, "/dev/vda2"),
            other: device(Slot::A, "/dev/vda3"),
        };
        let err = SlotDevices::parse(&devices.render()).unwrap_err();
        assert!(err.to_string().contains("both entries are slot a"), "{err}");
    }
}
