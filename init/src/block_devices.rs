//! Finding a partition by its GPT PARTUUID. There is no udev/blkid here: the kernel names
//! disks in probe order, so the GPTs of all whole disks are read and the partition number
//! is matched to the kernel's child device through sysfs.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dm_verity;
use crate::error::{Context, Error, Result};
use crate::gpt::{self, Entry, GptError, Header};

const SYS_BLOCK: &str = "/sys/class/block";
/// Block devices appear asynchronously after their driver module loads.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
pub const WAIT_FOR_DEVICES: Duration = Duration::from_secs(15);
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
}

impl Partition {
    pub fn disk_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.disk)
    }

    /// Size in bytes, as the kernel currently sees it.
    pub fn size_bytes(&self) -> Result<u64> {
        sysfs_size_bytes(&self.name)
    }
}

/// The GPT of one disk as read from it, with what is needed to rewrite it.
pub struct DiskTable {
    pub mbr: Vec<u8>,
    pub header: Header,
    pub entries_raw: Vec<u8>,
    pub entries: Vec<Entry>,
    pub lba_size: u64,
    pub disk_lbas: u64,
}

/// Polls until a partition with `partuuid` and its device node exist.
pub fn wait_for_partition(partuuid: &str, timeout: Duration) -> Result<Partition> {
    let started = Instant::now();
    loop {
        if let Some(partition) = find_partition(partuuid) {
            return Ok(partition);
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: format!(
                    "a partition with PARTUUID {partuuid} (disks seen: {})",
                    whole_disks().join(", ")
                ),
                seconds: timeout.as_secs(),
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
    let wanted = partuuid.to_ascii_lowercase();
    let mut disks = whole_disks();
    if let Some(root_disk) = verified_root_disk() {
        disks.sort_by_key(|disk| *disk != root_disk);
    }
    for disk in disks {
        let Ok(table) = read_disk_table(&disk) else {
            continue;
        };
        let Some(entry) = table.entries.iter().find(|e| e.unique_guid == wanted) else {
            continue;
        };
        let name = partition_child(&disk, entry.number)?;
        let dev_path = Path::new("/dev").join(&name);
        if !dev_path.exists() {
            return None;
        }
        let dev_numbers = read_sysfs(&name, "dev")?;
        return Some(Partition {
            disk,
            number: entry.number,
            name,
            dev_path,
            dev_numbers,
        });
    }
    None
}

/// The disk under the device-mapper device named "root" (stage 1's dm-verity), if any.
fn verified_root_disk() -> Option<String> {
    let devices = fs::read_dir(SYS_BLOCK).ok()?;
    let root = devices
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("dm-"))
        .find(|name| {
            read_sysfs(name, "dm/name").is_some_and(|dm_name| dm_name == dm_verity::ROOT_DM_NAME)
        })?;
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
pub fn partition_child(disk: &str, number: u32) -> Option<String> {
    let dir = fs::read_dir(Path::new(SYS_BLOCK).join(disk)).ok()?;
    let wanted = number.to_string();
    dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|child| {
            fs::read_to_string(
                Path::new(SYS_BLOCK)
                    .join(disk)
                    .join(child)
                    .join("partition"),
            )
            .is_ok_and(|n| n.trim() == wanted)
        })
}

/// Reads and checks the GPT of `/dev/<disk>`: the primary table, or the backup at the disk's
/// last block when the primary is damaged.
pub fn read_disk_table(disk: &str) -> Result<DiskTable> {
    let path = Path::new("/dev").join(disk);
    let file = File::open(&path).context(|| format!("open {}", path.display()))?;
    let lba_size = read_sysfs(disk, "queue/logical_block_size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s >= 512 && s.is_power_of_two())
        .unwrap_or(512);
    let disk_lbas = sysfs_size_bytes(disk)? / lba_size;
    table_from_device(&file, lba_size, disk_lbas).map_err(|err| match err {
        TableError::Io(source) => Error::Io {
            what: format!("read GPT of {}", path.display()),
            source,
        },
        TableError::Gpt(gpt) => Error::Invalid(format!("{}: {gpt}", path.display())),
    })
}

#[derive(Debug)]
pub enum TableError {
    Io(std::io::Error),
    Gpt(GptError),
}

impl From<std::io::Error> for TableError {
    fn from(err: std::io::Error) -> Self {
        TableError::Io(err)
    }
}

impl From<GptError> for TableError {
    fn from(err: GptError) -> Self {
        TableError::Gpt(err)
    }
}

/// The GPT of a disk image or device of `disk_lbas` blocks of `lba_size` bytes.
pub fn table_from_device(
    device: &File,
    lba_size: u64,
    disk_lbas: u64,
) -> std::result::Result<DiskTable, TableError> {
    let read_at = |lba: u64, len: u64| -> std::io::Result<Vec<u8>> {
        let mut buffer = vec![0u8; len as usize];
        device.read_exact_at(&mut buffer, lba * lba_size)?;
        Ok(buffer)
    };
    let mbr = read_at(0, lba_size)?;
    let header = match gpt::parse_header(&read_at(1, lba_size)?) {
        Ok(primary) => primary,
        Err(primary_err) if disk_lbas > 2 => {
            gpt::parse_header(&read_at(disk_lbas - 1, lba_size)?).map_err(|_| primary_err)?
        }
        Err(primary_err) => return Err(primary_err.into()),
    };
    let entries_raw = read_at(header.entries_lba, header.entries_lbas(lba_size) * lba_size)?;
    let entries = gpt::parse_entries(&header, &entries_raw)?;
    Ok(DiskTable {
        mbr,
        header,
        entries_raw,
        entries,
        lba_size,
        disk_lbas,
    })
}

fn read_sysfs(name: &str, attribute: &str) -> Option<String> {
    let text = fs::read_to_string(Path::new(SYS_BLOCK).join(name).join(attribute)).ok()?;
    Some(text.trim().to_owned())
}

/// sysfs counts block device sizes in 512-byte sectors whatever the logical block size.
fn sysfs_size_bytes(name: &str) -> Result<u64> {
    read_sysfs(name, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .ok_or_else(|| Error::Invalid(format!("{SYS_BLOCK}/{name}/size is unreadable")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(bytes).expect("write");
        file
    }

    #[test]
    fn reads_the_table_of_an_image_file() {
        let image = file_with(&gpt::tests::image(16 * MIB));
        let table = table_from_device(image.as_file(), 512, 16 * MIB / 512).expect("table");
        assert_eq!(table.entries.len(), 4);
        assert_eq!(table.header.my_lba, 1);
        assert_eq!(table.mbr.len(), 512);
        assert_eq!(table.entries_raw.len(), 128 * 128);
    }

    #[test]
    fn falls_back_to_the_backup_table() {
        let mut bytes = gpt::tests::image(16 * MIB);
        bytes[512 + 30] ^= 0xff;
        let image = file_with(&bytes);
        let table = table_from_device(image.as_file(), 512, 16 * MIB / 512).expect("table");
        assert_eq!(table.header.my_lba, 16 * MIB / 512 - 1);
        assert_eq!(table.entries.len(), 4);
    }

    #[test]
    fn a_disk_without_a_gpt_is_an_error() {
        let image = file_with(&vec![0u8; MIB as usize]);
        let result = table_from_device(image.as_file(), 512, MIB / 512);
        assert!(matches!(
            result,
            Err(TableError::Gpt(GptError::NoSignature))
        ));
    }
}
