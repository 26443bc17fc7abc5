//! Finding a partition by its GPT PARTUUID, for PID 1 (root, ESP) and the disk helper (data),
//! and a slot's root partition by its GPT name on the ESP's disk (the disk helper, for the
//! update service).
//! There is no udev or blkid on the box: the kernel names disks in probe order, so the GPTs
//! of all whole disks are read and the partition number is matched to the kernel's child
//! device through sysfs. One place for this, not one per caller.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::gpt::{self, Entry, Table};
use crate::slot::Slot;

const SYS_BLOCK: &str = "/sys/class/block";
/// Block devices appear asynchronously after their driver module loads.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
pub const WAIT_FOR_DEVICES: Duration = Duration::from_secs(15);
/// The device-mapper name stage 1 gives the verified root.
pub const ROOT_DM_NAME: &str = "root";
/// Kernel block device names that never carry our GPT; reading a CD-ROM with no medium
/// can take seconds.
const NOT_DISKS: [&str; 6] = ["loop", "ram", "zram", "dm-", "sr", "md"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Whole disk, e.g. `vda`.
    pub disk: String,
    /// 1-based partition number, e.g. 4.
    pub number: u32,
    /// Kernel name, e.g. `vda4`.
    pub name: String,
    pub dev_path: PathBuf,
    /// `major:minor`, as device-mapper tables take it.
    pub dev_numbers: String,
    /// The GPT unique partition GUID, lower-case and hyphenated as on the kernel command line.
    pub partuuid: String,
}

impl Partition {
    pub fn disk_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.disk)
    }

    /// Size in bytes, as the kernel currently sees it.
    pub fn size_bytes(&self) -> Result<u64, Error> {
        sysfs_size_bytes(&self.name)
    }
}

/// Polls until a partition with `partuuid` and its device node exist.
pub fn wait_for_partition(partuuid: &str, timeout: Duration) -> Result<Partition, Error> {
    let started = Instant::now();
    loop {
        if let Some(partition) = find_partition(partuuid) {
            return Ok(partition);
        }
        if started.elapsed() >= timeout {
            return Err(Error::PartitionNotFound {
                partuuid: partuuid.to_owned(),
                seconds: timeout.as_secs(),
                disks: whole_disks().join(", "),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// One pass over the disks present right now. The disk holding the verified root is searched
/// first: PARTUUIDs are derived from the image, so a second disk written with the same image
/// (a USB stick being prepared for another box) carries the same ones, and /data and the ESP
/// must come from the disk this box booted.
pub fn find_partition(partuuid: &str) -> Option<Partition> {
    let mut disks = whole_disks();
    if let Some(root_disk) = verified_root_disk() {
        disks.sort_by_key(|disk| *disk != root_disk);
    }
    for disk in disks {
        let Ok(table) = read_disk_table(&disk) else {
            continue;
        };
        let Some(entry) = table.entry_by_unique_guid(partuuid) else {
            continue;
        };
        return partition_of(&disk, entry);
    }
    None
}

/// The root partition of `slot`: the entry named [`Slot::partition_name`] in the GPT of the
/// disk that holds the ESP (the disk this box booted; a second disk written with the same
/// image has the same names). Reading that GPT needs read access to the whole disk: root's.
pub fn slot_partition(esp_partuuid: &str, slot: Slot) -> Result<Partition, Error> {
    let esp = find_partition(esp_partuuid).ok_or_else(|| Error::EspNotFound {
        partuuid: esp_partuuid.to_owned(),
        disks: whole_disks().join(", "),
    })?;
    let table = read_disk_table(&esp.disk)?;
    let failed = |problem| Error::SlotPartition {
        slot,
        name: slot.partition_name(),
        disk: esp.disk.clone(),
        problem,
    };
    let entry = named_entry(&table.entries, slot.partition_name()).map_err(failed)?;
    partition_of(&esp.disk, entry)
        .ok_or_else(|| failed("the kernel shows no device node for that GPT entry"))
}

/// `slot`'s own boot partition on the ESP's disk ([`Slot::boot_partition_name`]), or `None` on
/// a disk without one (a UEFI board's).
pub fn slot_boot_partition(esp_partuuid: &str, slot: Slot) -> Result<Option<Partition>, Error> {
    let esp = find_partition(esp_partuuid).ok_or_else(|| Error::EspNotFound {
        partuuid: esp_partuuid.to_owned(),
        disks: whole_disks().join(", "),
    })?;
    let table = read_disk_table(&esp.disk)?;
    let name = slot.boot_partition_name();
    if !table.entries.iter().any(|e| e.name == name) {
        return Ok(None);
    }
    let failed = |problem| Error::SlotPartition {
        slot,
        name,
        disk: esp.disk.clone(),
        problem,
    };
    let entry = named_entry(&table.entries, name).map_err(failed)?;
    partition_of(&esp.disk, entry)
        .map(Some)
        .ok_or_else(|| failed("the kernel shows no device node for that GPT entry"))
}

/// The one GPT entry named `name`; two would leave it to chance which one is written.
fn named_entry<'a>(entries: &'a [Entry], name: &str) -> Result<&'a Entry, &'static str> {
    let mut named = entries.iter().filter(|e| e.name == name);
    let entry = named.next().ok_or("no GPT entry has that name")?;
    match named.next() {
        Some(_) => Err("more than one GPT entry has that name"),
        None => Ok(entry),
    }
}

/// The kernel's device for `entry` of `disk`'s GPT, if it has one (and its node exists).
fn partition_of(disk: &str, entry: &Entry) -> Option<Partition> {
    let name = partition_child(disk, entry.number)?;
    let dev_path = Path::new("/dev").join(&name);
    if !dev_path.exists() {
        return None;
    }
    let dev_numbers = read_sysfs(&name, "dev")?;
    Some(Partition {
        disk: disk.to_owned(),
        number: entry.number,
        name,
        dev_path,
        dev_numbers,
        partuuid: entry.unique_guid.to_string(),
    })
}

/// The disk under the device-mapper device named [`ROOT_DM_NAME`], if any.
fn verified_root_disk() -> Option<String> {
    let devices = fs::read_dir(SYS_BLOCK).ok()?;
    let root = devices
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("dm-"))
        .find(|name| read_sysfs(name, "dm/name").is_some_and(|n| n == ROOT_DM_NAME))?;
    let slaves = fs::read_dir(Path::new(SYS_BLOCK).join(&root).join("slaves")).ok()?;
    let partition = slaves
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .next()?;
    whole_disks()
        .into_iter()
        .find(|disk| Path::new(SYS_BLOCK).join(disk).join(&partition).exists())
}

/// Kernel names of whole disks (block devices that are not partitions) with a medium.
pub fn whole_disks() -> Vec<String> {
    let Ok(dir) = fs::read_dir(SYS_BLOCK) else {
        return Vec::new();
    };
    let mut disks: Vec<String> = dir
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !NOT_DISKS.iter().any(|prefix| name.starts_with(prefix)))
        .filter(|name| !Path::new(SYS_BLOCK).join(name).join("partition").exists())
        .filter(|name| read_sysfs(name, "size").is_some_and(|size| size != "0"))
        .collect();
    disks.sort();
    disks
}

/// The child device of `disk` whose partition number is `number`, e.g. `vda4`.
fn partition_child(disk: &str, number: u32) -> Option<String> {
    let dir = fs::read_dir(Path::new(SYS_BLOCK).join(disk)).ok()?;
    let wanted = number.to_string();
    dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|child| {
            read_sysfs(&format!("{disk}/{child}"), "partition").is_some_and(|n| n == wanted)
        })
}

/// The GPT of `/dev/<disk>` (primary, or the backup when the primary is damaged).
pub fn read_disk_table(disk: &str) -> Result<Table, Error> {
    let path = Path::new("/dev").join(disk);
    let file = File::open(&path).map_err(|source| Error::io("open", &path, source))?;
    let lba_size = read_sysfs(disk, "queue/logical_block_size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s >= 512 && s.is_power_of_two())
        .unwrap_or(512);
    gpt::read_table(&file, lba_size, sysfs_size_bytes(disk)? / lba_size)
}

fn read_sysfs(name: &str, attribute: &str) -> Option<String> {
    let text = fs::read_to_string(Path::new(SYS_BLOCK).join(name).join(attribute)).ok()?;
    Some(text.trim().to_owned())
}

/// sysfs counts block device sizes in 512-byte sectors whatever the logical block size.
pub fn sysfs_size_bytes(name: &str) -> Result<u64, Error> {
    read_sysfs(name, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .ok_or_else(|| Error::Sysfs {
            path: Path::new(SYS_BLOCK).join(name).join("size"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::Guid;

    fn entry(number: u32, name: &str) -> Entry {
        Entry {
            number,
            type_guid: Guid([1; 16]),
            unique_guid: Guid([number as u8; 16]),
            first_lba: 2048 * u64::from(number),
            last_lba: 2048 * u64::from(number) + 2047,
            attributes: 0,
            name: name.to_owned(),
        }
    }

    #[test]
    fn a_slot_is_the_entry_of_its_name() {
        let entries = [
            entry(1, "esp"),
            entry(2, "root-a"),
            entry(3, "root-b"),
            entry(4, "data"),
        ];
        assert_eq!(
            named_entry(&entries, Slot::A.partition_name())
                .unwrap()
                .number,
            2
        );
        assert_eq!(
            named_entry(&entries, Slot::B.partition_name())
                .unwrap()
                .number,
            3
        );
    }

    #[test]
    fn a_missing_or_doubled_slot_name_is_refused() {
        let missing = [entry(1, "esp"), entry(2, "root-a")];
        assert_eq!(
            named_entry(&missing, Slot::B.partition_name()).unwrap_err(),
            "no GPT entry has that name"
        );
        let doubled = [entry(2, "root-b"), entry(3, "root-b")];
        assert_eq!(
            named_entry(&doubled, Slot::B.partition_name()).unwrap_err(),
            "more than one GPT entry has that name"
        );
    }
}
