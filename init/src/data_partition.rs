//! /data: the one writable file system. The image carries an empty data partition; the first
//! boot grows it to the end of the disk the image was written to and makes an ext4 on it.
//! Later boots mount what is there and report whether it was unmounted cleanly.

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::ioctl::{Opcode, Setter, opcode};
use rustix::mount::MountFlags;

use crate::block_devices::{self, Partition, WAIT_FOR_DEVICES};
use crate::error::{Context, Error, Result};
use crate::{gpt, mounts, signals};

pub const MOUNT_POINT: &str = "/data";
const MKE2FS: &str = "/usr/sbin/mke2fs";

// ext4 superblock: 1024 bytes at byte 1024 of the partition (fs/ext4/ext4.h).
const SUPERBLOCK_OFFSET: u64 = 1024;
const SUPERBLOCK_SIZE: usize = 1024;
const S_MAGIC: usize = 56;
const S_STATE: usize = 58;
const S_FEATURE_INCOMPAT: usize = 96;
const EXT4_MAGIC: u16 = 0xef53;
const EXT4_VALID_FS: u16 = 0x0001;
const EXT4_FEATURE_INCOMPAT_RECOVER: u32 = 0x0004;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// s_state bit 0: cleanly unmounted (ext4 without a journal clears it while mounted).
    pub valid_fs: bool,
    /// The journal holds transactions: the file system was not unmounted cleanly.
    pub needs_recovery: bool,
}

impl Superblock {
    pub fn clean(&self) -> bool {
        self.valid_fs && !self.needs_recovery
    }
}

/// `None` when the bytes hold no ext2/3/4 superblock.
pub fn parse_superblock(bytes: &[u8]) -> Option<Superblock> {
    let u16_at = |o: usize| Some(u16::from_le_bytes([*bytes.get(o)?, *bytes.get(o + 1)?]));
    let u32_at = |o: usize| {
        let b = bytes.get(o..o + 4)?;
        Some(u32::from_le_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    };
    if u16_at(S_MAGIC)? != EXT4_MAGIC {
        return None;
    }
    Some(Superblock {
        valid_fs: u16_at(S_STATE)? & EXT4_VALID_FS != 0,
        needs_recovery: u32_at(S_FEATURE_INCOMPAT)? & EXT4_FEATURE_INCOMPAT_RECOVER != 0,
    })
}

/// Reads the superblock of a device; an I/O error is an error, never "no file system": a
/// disk that fails to read must not be formatted.
pub fn read_superblock(device: &Path) -> Result<Option<Superblock>> {
    let file = File::open(device).context(|| format!("open {}", device.display()))?;
    let mut bytes = vec![0u8; SUPERBLOCK_SIZE];
    file.read_exact_at(&mut bytes, SUPERBLOCK_OFFSET)
        .context(|| format!("read the superblock of {}", device.display()))?;
    Ok(parse_superblock(&bytes))
}

pub struct DataMount {
    pub first_boot: bool,
    pub clean: bool,
    pub size_mib: u64,
}

/// Finds the data partition, makes its file system on first boot and mounts it on /data.
pub fn prepare_and_mount(partuuid: &str) -> Result<DataMount> {
    let partition = block_devices::wait_for_partition(partuuid, WAIT_FOR_DEVICES)?;
    let (first_boot, superblock) = match read_superblock(&partition.dev_path)? {
        Some(superblock) => (false, superblock),
        None => {
            // Growing is worth doing but not worth failing the boot over: a data partition
            // of the image's size still works.
            if let Err(err) = grow_to_disk_end(&partition) {
                log_error!("data partition not grown: {err}");
            }
            make_filesystem(&partition.dev_path)?;
            let made = read_superblock(&partition.dev_path)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "{MKE2FS} left no ext4 on {}",
                    partition.dev_path.display()
                ))
            })?;
            (true, made)
        }
    };
    let device = partition.dev_path.to_string_lossy().into_owned();
    mounts::mount(
        &device,
        MOUNT_POINT,
        "ext4",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )?;
    Ok(DataMount {
        first_boot,
        clean: superblock.clean(),
        size_mib: partition.size_bytes()? / (1024 * 1024),
    })
}

/// Rewrites the GPT so the data partition reaches the end of the disk, then tells the
/// kernel. BLKRRPART would re-read the whole table, which the kernel refuses while root-a is
/// in use; BLKPG_RESIZE_PARTITION changes just this partition.
fn grow_to_disk_end(partition: &Partition) -> Result<()> {
    let table = block_devices::read_disk_table(&partition.disk)?;
    if table.header.my_lba != 1 {
        return Err(Error::Invalid(
            "the primary GPT header is damaged; not rewriting the table".to_owned(),
        ));
    }
    let plan = gpt::plan_grow(
        &table.mbr,
        &table.header,
        &table.entries_raw,
        table.lba_size,
        table.disk_lbas,
        partition.number,
    )
    .map_err(|err| Error::Invalid(format!("{}: {err}", partition.disk_path().display())))?;
    let Some(plan) = plan else { return Ok(()) };

    let disk_path = partition.disk_path();
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk_path)
        .context(|| format!("open {} for writing", disk_path.display()))?;
    for write in &plan.writes {
        disk.write_all_at(&write.bytes, write.offset)
            .context(|| format!("write the {} of {}", write.what, disk_path.display()))?;
    }
    disk.sync_all()
        .context(|| format!("sync {}", disk_path.display()))?;
    let start = plan.first_lba * table.lba_size;
    let length = (plan.new_last_lba - plan.first_lba + 1) * table.lba_size;
    resize_partition(&disk, partition.number, start, length).context(|| {
        format!(
            "tell the kernel {} grew (BLKPG_RESIZE_PARTITION)",
            partition.name
        )
    })
}

const BLKPG: Opcode = opcode::none(0x12, 105);
const BLKPG_RESIZE_PARTITION: i32 = 3;

/// `struct blkpg_partition` (linux/blkpg.h); start and length in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut c_void,
}

fn resize_partition(disk: &File, number: u32, start: u64, length: u64) -> std::io::Result<()> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let mut partition = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| invalid("start"))?,
        length: i64::try_from(length).map_err(|_| invalid("length"))?,
        pno: i32::try_from(number).map_err(|_| invalid("partition number"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as i32,
        data: (&raw mut partition).cast(),
    };
    // SAFETY: BLKPG reads a blkpg_ioctl_arg whose `data` points at a blkpg_partition of
    // `datalen` bytes; both live on this stack frame for the duration of the call.
    unsafe { rustix::ioctl::ioctl(disk, Setter::<BLKPG, BlkpgIoctlArg>::new(arg)) }?;
    Ok(())
}

/// mke2fs with lazy inode table and journal initialisation, so the first boot does not
/// spend minutes zeroing a large SD card; the kernel finishes that in the background.
fn make_filesystem(device: &Path) -> Result<()> {
    let mut command = Command::new(MKE2FS);
    // SAFETY: only resets the signal mask and SIGPIPE between fork and exec.
    unsafe { command.pre_exec(signals::reset_in_child) };
    let output = command
        .args([
            "-t",
            "ext4",
            "-q",
            "-L",
            "data",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
        ])
        .arg(device)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .stdin(Stdio::null())
        .output()
        .context(|| format!("run {MKE2FS}"))?;
    if output.status.success() {
        return Ok(());
    }
    let says = String::from_utf8_lossy(&output.stderr);
    Err(Error::Invalid(format!(
        "{MKE2FS} {} failed ({}): {}",
        device.display(),
        output.status,
        says.trim().replace('\n', "; ")
    )))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn superblock(state: u16, incompat: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; SUPERBLOCK_SIZE];
        bytes[S_MAGIC..S_MAGIC + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        bytes[S_STATE..S_STATE + 2].copy_from_slice(&state.to_le_bytes());
        bytes[S_FEATURE_INCOMPAT..S_FEATURE_INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
        bytes
    }

    #[test]
    fn clean_means_valid_and_nothing_to_recover() {
        let extents_and_64bit = 0x40 | 0x80;
        assert!(
            parse_superblock(&superblock(1, extents_and_64bit))
                .expect("ext4")
                .clean()
        );
        let crashed = parse_superblock(&superblock(1, extents_and_64bit | 0x4)).expect("ext4");
        assert!(crashed.needs_recovery && !crashed.clean());
        let unchecked = parse_superblock(&superblock(0, extents_and_64bit)).expect("ext4");
        assert!(!unchecked.valid_fs && !unchecked.clean());
    }

    #[test]
    fn no_magic_is_no_file_system() {
        assert_eq!(parse_superblock(&[0u8; SUPERBLOCK_SIZE]), None);
        assert_eq!(parse_superblock(&[0u8; 10]), None);
    }

    #[test]
    fn reads_the_superblock_at_byte_1024_of_a_device() {
        let mut image = tempfile::NamedTempFile::new().expect("temp");
        image.write_all(&[0u8; 1024]).expect("pad");
        image.write_all(&superblock(1, 0x4)).expect("superblock");
        let found = read_superblock(image.path()).expect("read").expect("ext4");
        assert!(found.needs_recovery);

        let empty = tempfile::NamedTempFile::new().expect("temp");
        empty.as_file().set_len(1024 * 1024).expect("size");
        assert_eq!(read_superblock(empty.path()).expect("read"), None);

        let short = tempfile::NamedTempFile::new().expect("temp");
        assert!(
            read_superblock(short.path()).is_err(),
            "a read error is not a blank disk"
        );
    }

    /// The real thing: mke2fs writes an image, and our reader agrees with it.
    #[test]
    fn reads_a_superblock_made_by_mke2fs() {
        if !Path::new(MKE2FS).exists() {
            return;
        }
        let image = tempfile::NamedTempFile::new().expect("temp");
        image.as_file().set_len(32 * 1024 * 1024).expect("size");
        make_filesystem(image.path()).expect("mke2fs");
        let made = read_superblock(image.path()).expect("read").expect("ext4");
        assert!(made.clean(), "{made:?}");
    }

    #[test]
    fn blkpg_structs_match_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
        assert_eq!(BLKPG as u64, 0x1269);
    }
}
