//! The baseline's disk: GPT with an ESP (systemd-boot, the kernel, the initramfs) and the
//! ext4 root, nothing else (Debian has no A/B slots and no separate data partition).
//!
//! ```text
//!  0       protective MBR, GPT header and entries
//!  1 MiB   p1 ESP   FAT32, the same size as Carapace's        /dev/vda1
//!          p2 root  ext4, content + 30 %                      /dev/vda2 (root= on the cmdline)
//!  end     1 MiB: backup GPT
//! ```
//! `carapace_image::layout::DiskPlan` is Carapace's fixed four-partition layout, so this
//! two-partition table is written with the `gpt` crate.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition_types;

use super::error::{Context, Result, fail};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
const BLOCK: usize = 4096;

/// Writes the disk to `path`. The ESP is written whole, exactly as `carapace build` writes
/// Carapace's (so it counts the same in "allocated" on both sides); the ext4 image's all-zero
/// blocks (free space) stay holes, as mke2fs left them in its own file.
pub fn write(path: &Path, esp: &[u8], root_ext4: &Path) -> Result<()> {
    let what = || format!("write the baseline disk {}", path.display());
    let root_len = std::fs::metadata(root_ext4)
        .context(|| format!("stat {}", root_ext4.display()))?
        .len();
    if !(esp.len() as u64).is_multiple_of(MIB) || !root_len.is_multiple_of(MIB) {
        return Err(fail(format!(
            "{}: the ESP and root must be whole MiB",
            what()
        )));
    }
    let esp_offset = MIB;
    let root_offset = esp_offset + esp.len() as u64;
    let total = root_offset + root_len + MIB;

    let partial = path.with_extension("img.partial");
    // Read and write: the gpt crate reads back what it writes.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .context(what)?;
    file.set_len(total).context(what)?;
    let mut device = file;
    let sectors = u32::try_from(total / SECTOR - 1)
        .map_err(|_| fail(format!("{}: disk too large for MBR", what())))?;
    ProtectiveMBR::with_lb_size(sectors)
        .overwrite_lba0(&mut device)
        .context(what)?;
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(device, None)
        .context(what)?;
    table
        .add_partition_at(
            "ESP",
            1,
            esp_offset / SECTOR,
            esp.len() as u64 / SECTOR,
            partition_types::EFI,
            0,
        )
        .context(what)?;
    table
        .add_partition_at(
            "root",
            2,
            root_offset / SECTOR,
            root_len / SECTOR,
            partition_types::LINUX_ROOT_X64,
            0,
        )
        .context(what)?;
    let file = table.write().context(what)?;

    file.write_all_at(esp, esp_offset).context(what)?;
    copy_sparse(root_ext4, &file, root_offset).context(what)?;
    file.sync_all().context(what)?;
    drop(file);
    std::fs::rename(&partial, path).context(what)
}

/// Copies `from` into `to` at `offset`, skipping 4 KiB blocks that are all zero.
fn copy_sparse(from: &Path, to: &std::fs::File, offset: u64) -> std::io::Result<()> {
    let mut input = std::fs::File::open(from)?;
    let mut chunk = vec![0u8; 256 * BLOCK];
    let mut pos = 0u64;
    loop {
        let n = read_full(&mut input, &mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        for (i, block) in chunk[..n].chunks(BLOCK).enumerate() {
            if block.iter().any(|b| *b != 0) {
                to.write_all_at(block, offset + pos + (i * BLOCK) as u64)?;
            }
        }
        pos += n as u64;
    }
}

fn read_full(input: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
