//! Applies planned GPT writes to the whole disk a partition lives on (board-support orders
//! them so a power cut between two leaves a table that reads), and returns the open disk for
//! any ioctl that must follow.

use std::fs::{File, OpenOptions};

use board_support::block_devices::Partition;
use board_support::gpt;

use crate::error::Error;

pub fn apply(
    partition: &Partition,
    writes: &[gpt::DiskWrite],
    step: &'static str,
) -> Result<File, Error> {
    let disk_path = partition.disk_path();
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk_path)
        .map_err(|e| Error::io("open for writing", &disk_path, e))?;
    gpt::apply_writes(&disk, writes).map_err(|source| Error::TableWrite {
        disk: partition.disk.clone(),
        step,
        source,
    })?;
    Ok(disk)
}
