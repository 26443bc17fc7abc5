//! The two edits a box makes to its own GPT: growing the last partition to the end of a
//! disk bigger than the image written to it, and changing a partition's attribute bits (the
//! data partition's "new" mark). Both go through the ordered rewrite in write.rs, and both
//! also restore a damaged primary copy from the backup the table was read from.

use super::write::{protective_mbr_for, rewrite};
use super::*;
use crate::error::Error;

/// What growing a partition takes, and where it ends up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowPlan {
    pub partition: u32,
    pub first_lba: u64,
    pub old_last_lba: u64,
    pub new_last_lba: u64,
    /// In order; apply with [`super::apply_writes`].
    pub writes: Vec<DiskWrite>,
}

/// Growing partition `number` of `table` to the end of its disk: the entry's new end, both
/// headers with the new `last_usable`, the backup moved to the disk's last blocks, the
/// protective MBR's size, and the old backup header (now inside the partition) zeroed last.
/// `None` when the partition already ends where it would end.
pub fn plan_grow(table: &Table, number: u32) -> Result<Option<GrowPlan>, Error> {
    let target = table
        .entry(number)
        .ok_or(Error::GptNoSuchPartition { number })?;
    if table
        .entries
        .iter()
        .any(|e| e.number != number && e.last_lba >= target.first_lba)
    {
        return Err(Error::GptNotLast { number });
    }
    let header = &table.header;
    if target.first_lba < header.first_usable
        || target.first_lba > target.last_lba
        || target.last_lba > header.last_usable
    {
        return Err(Error::GptBadPartition { number });
    }
    let lba_size = table.lba_size;
    let entries_lbas = header.entries_lbas(lba_size);
    let needed = header
        .last_usable
        .saturating_add(entries_lbas)
        .saturating_add(2);
    if table.disk_lbas < needed {
        return Err(Error::GptDiskTooSmall {
            disk_lbas: table.disk_lbas,
            needed,
        });
    }
    let backup_lba = table.disk_lbas - 1;
    let last_usable = backup_lba - entries_lbas - 1;
    let align = (ALIGNMENT_BYTES / lba_size).max(1);
    let new_last_lba = ((last_usable + 1) / align * align)
        .saturating_sub(1)
        .max(target.last_lba);
    let old_backup_lba = if table.from_backup {
        header.my_lba
    } else {
        header.alternate_lba
    };
    if new_last_lba == target.last_lba && old_backup_lba == backup_lba && !table.from_backup {
        return Ok(None);
    }
    let mut entries = table.entries_raw.clone();
    let at = (number as usize - 1) * header.entry_size as usize;
    write_u64(&mut entries, at + ENT_LAST_LBA, new_last_lba);
    let mut writes = rewrite_table(table, last_usable, entries)?;
    if let Some(mbr) = protective_mbr_for(&table.mbr, table.disk_lbas) {
        writes.push(DiskWrite {
            offset: 0,
            bytes: mbr,
            what: "protective MBR",
        });
    }
    // A stale "EFI PART" inside the grown partition could be taken for a table by a tool
    // scanning for one; it goes only after both new copies are on the disk.
    if old_backup_lba != backup_lba
        && old_backup_lba > target.last_lba
        && old_backup_lba <= new_last_lba
    {
        writes.push(DiskWrite {
            offset: old_backup_lba * lba_size,
            bytes: vec![0; lba_size as usize],
            what: "old backup GPT header",
        });
    }
    Ok(Some(GrowPlan {
        partition: number,
        first_lba: target.first_lba,
        old_last_lba: target.last_lba,
        new_last_lba,
        writes,
    }))
}

/// Setting partition `number`'s attribute bits to `attributes`; `None` when they already are
/// and both copies are whole.
pub fn plan_set_attributes(
    table: &Table,
    number: u32,
    attributes: u64,
) -> Result<Option<Vec<DiskWrite>>, Error> {
    let entry = table
        .entry(number)
        .ok_or(Error::GptNoSuchPartition { number })?;
    if entry.attributes == attributes && !table.from_backup {
        return Ok(None);
    }
    let mut entries = table.entries_raw.clone();
    let at = (number as usize - 1) * table.header.entry_size as usize;
    write_u64(&mut entries, at + ENT_ATTRIBUTES, attributes);
    // Keeps the backup where it is: the disk's last LBA after any grow, which is where the
    // rewrite puts it.
    rewrite_table(table, table.header.last_usable, entries).map(Some)
}

fn rewrite_table(
    table: &Table,
    last_usable: u64,
    entries: Vec<u8>,
) -> Result<Vec<DiskWrite>, Error> {
    let header = &table.header;
    let entries_lbas = header.entries_lbas(table.lba_size);
    // Read from the backup: the primary's entries go where UEFI puts them, right after it.
    let primary_entries_lba = if table.from_backup {
        2
    } else {
        header.entries_lba
    };
    if primary_entries_lba + entries_lbas > header.first_usable {
        return Err(Error::GptHeader {
            lba: 1,
            reason: "no room for the primary entry array before the first usable LBA",
        });
    }
    if last_usable + entries_lbas + 2 > table.disk_lbas {
        return Err(Error::GptDiskTooSmall {
            disk_lbas: table.disk_lbas,
            needed: last_usable + entries_lbas + 2,
        });
    }
    Ok(rewrite(
        header,
        primary_entries_lba,
        table.lba_size,
        table.disk_lbas,
        last_usable,
        entries,
    ))
}
