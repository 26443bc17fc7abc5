//! The helper's decisions, in order: find the partition, grow it, then format it (only with
//! the builder's mark or the owner's factory reset) or check and repair it. Any failure
//! becomes a `degraded` outcome naming the reason; nothing here formats a partition that
//! merely looks empty or broken.

use std::path::Path;

use board_support::DataOutcome;
use board_support::block_devices::{self, Partition, WAIT_FOR_DEVICES};

use crate::e2fsprogs::{self, BACKUP_SUPERBLOCKS};
use crate::error::Error;
use crate::{Args, ext4, factory_reset, grow, new_mark};

pub fn run(args: &Args) -> DataOutcome {
    match prepare(args) {
        Ok(outcome) => outcome,
        Err(err) => DataOutcome::Degraded {
            reason: err.reason(),
            detail: err.to_string(),
        },
    }
}

fn prepare(args: &Args) -> Result<DataOutcome, Error> {
    let partition = block_devices::wait_for_partition(&args.data_partuuid, WAIT_FOR_DEVICES)
        .map_err(Error::NotFound)?;
    let table = block_devices::read_disk_table(&partition.disk).map_err(|source| Error::Table {
        disk: partition.disk.clone(),
        source,
    })?;
    if table.from_backup {
        progress!(
            "the primary GPT of {} is damaged; using the backup",
            partition.disk
        );
    }
    let marked_new = new_mark::is_marked_new(&table, partition.number);
    let reset = factory_reset::requested(&args.esp_partuuid).unwrap_or_else(|err| {
        progress!("factory reset not checked: {err}");
        false
    });
    // A partition of the image's size still works: growing is worth trying, not failing for.
    let grew = grow::grow_to_disk_end(&partition, &table).unwrap_or_else(|err| {
        progress!("data partition not grown: {err}");
        false
    });

    if marked_new || reset {
        let why = if reset {
            format!("factory-reset (the ESP holds {})", factory_reset::FILE_NAME)
        } else {
            "new (GPT attribute bit 48 set by the builder)".to_owned()
        };
        return format(&partition, &why, marked_new, reset, args);
    }
    check_and_repair(&partition, grew)
}

fn format(
    partition: &Partition,
    why: &str,
    marked_new: bool,
    reset: bool,
    args: &Args,
) -> Result<DataOutcome, Error> {
    let device = &partition.dev_path;
    progress!("format start device={} reason={why}", device.display());
    e2fsprogs::make_filesystem(device)?;
    sync_device(device)?;
    if marked_new {
        new_mark::clear(partition)?;
    }
    progress!("format done device={}; new mark cleared", device.display());
    if reset {
        factory_reset::done(&args.esp_partuuid)?;
        progress!(
            "factory reset done; {} deleted from the ESP",
            factory_reset::FILE_NAME
        );
    }
    ready(partition, true, true, false)
}

/// A file system that was not unmounted cleanly is checked (`e2fsck -p`, then `-f -y`); one
/// without a primary superblock, or that those cannot fix, is repaired from each backup
/// superblock in turn. What none of them repairs is reported, never formatted.
fn check_and_repair(partition: &Partition, grew: bool) -> Result<DataOutcome, Error> {
    let device = partition.dev_path.as_path();
    let found = ext4::read_superblock(device)?;
    let clean = found.is_some_and(|sb| sb.clean());
    let mut repaired = false;
    if !clean {
        let mut fixed = false;
        if found.is_some() {
            progress!(
                "check start device={} (not unmounted cleanly)",
                device.display()
            );
            let preen = e2fsprogs::preen(device)?;
            (fixed, repaired) = (preen.fixed(), preen.changed());
            if !fixed {
                let full = e2fsprogs::repair(device)?;
                (fixed, repaired) = (full.fixed(), full.changed());
            }
        } else {
            progress!(
                "repair start device={} (no ext4 superblock at byte 1024)",
                device.display()
            );
        }
        let mut tried = Vec::new();
        for block in BACKUP_SUPERBLOCKS {
            if fixed {
                break;
            }
            progress!("repair with the backup superblock at block {block}");
            let fsck = e2fsprogs::repair_from_backup(device, block)?;
            // A primary superblock rewritten from a backup is a repair whatever the code.
            (fixed, repaired) = (fsck.fixed(), true);
            tried.push(format!("{block}: exit {}", fsck.0));
        }
        let now = ext4::read_superblock(device)?;
        if !fixed || !now.is_some_and(|sb| sb.clean()) {
            return Err(Error::Unrepairable {
                device: device.to_owned(),
                detail: format!(
                    "e2fsck found no usable superblock (primary and backups at blocks {})",
                    tried.join(", ")
                ),
            });
        }
        progress!(
            "checked device={} repaired={}",
            device.display(),
            board_support::data_outcome::yes_no(repaired)
        );
    }
    if grew && let Err(err) = e2fsprogs::grow_filesystem(device) {
        progress!("file system not grown (it still works at its old size): {err}");
    }
    ready(partition, false, clean, repaired)
}

fn ready(
    partition: &Partition,
    first_boot: bool,
    clean: bool,
    repaired: bool,
) -> Result<DataOutcome, Error> {
    let size = partition.size_bytes().map_err(|source| Error::Table {
        disk: partition.name.clone(),
        source,
    })?;
    Ok(DataOutcome::Ready {
        device: partition.dev_path.display().to_string(),
        first_boot,
        clean,
        repaired,
        size_mib: size >> 20,
    })
}

/// mke2fs syncs what it wrote; this makes sure before the mark that allowed it goes away.
fn sync_device(device: &Path) -> Result<(), Error> {
    let file = std::fs::File::open(device).map_err(|e| Error::io("open", device, e))?;
    file.sync_all().map_err(|e| Error::io("sync", device, e))
}
