//! The builder's "never formatted" mark on the data partition (GPT attribute bit 48,
//! board_support::gpt::ATTR_DATA_NEW). It is cleared only after mke2fs succeeded and its
//! writes are on the disk, so a power cut during the first format leaves the mark in place
//! and the next boot formats again; once it is gone, nothing formats /data but the owner's
//! factory reset.

use board_support::block_devices::{self, Partition};
use board_support::gpt;

use crate::error::Error;
use crate::table_write;

pub fn is_marked_new(table: &gpt::Table, number: u32) -> bool {
    table
        .entry(number)
        .is_some_and(|e| e.attributes & gpt::ATTR_DATA_NEW != 0)
}

/// Clears the mark, in the GPT's power-cut-safe order (backup copy first, then primary).
pub fn clear(partition: &Partition) -> Result<(), Error> {
    let table_error = |step, source| Error::TableWrite {
        disk: partition.disk.clone(),
        step,
        source,
    };
    // Read again: the grow on this boot rewrote the table.
    let table = block_devices::read_disk_table(&partition.disk).map_err(|source| Error::Table {
        disk: partition.disk.clone(),
        source,
    })?;
    let attributes = table
        .entry(partition.number)
        .map_or(0, |e| e.attributes & !gpt::ATTR_DATA_NEW);
    let Some(writes) = gpt::plan_set_attributes(&table, partition.number, attributes)
        .map_err(|e| table_error("plan clearing the new mark", e))?
    else {
        return Ok(());
    };
    table_write::apply(partition, &writes, "clear the new mark").map(drop)
}
