//! Writing GPTs: a fresh table for the builder, and the ordered rewrite every edit on a box
//! goes through (backup copy first, then primary, each flushed before the next write).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::*;
use crate::error::Error;

/// One write: `bytes` at byte `offset` of the whole disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskWrite {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub what: &'static str,
}

/// A partition of a table the builder makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPartition {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

/// The writes that make a fresh GPT (protective MBR, both copies, 128 entries) on a disk of
/// `disk_lbas` blocks, in the same safe order as [`rewrite`].
pub fn create(
    disk_guid: Guid,
    lba_size: u64,
    disk_lbas: u64,
    partitions: &[NewPartition],
) -> Result<Vec<DiskWrite>, Error> {
    let entries_bytes = u64::from(ENTRY_COUNT) * u64::from(ENTRY_SIZE);
    let entries_lbas = entries_bytes.div_ceil(lba_size);
    let layout = |reason: String| Error::GptLayout { reason };
    if partitions.len() > ENTRY_COUNT as usize {
        return Err(layout(format!("{} partitions", partitions.len())));
    }
    let first_usable = 2 + entries_lbas;
    let last_usable = disk_lbas
        .checked_sub(2 + entries_lbas)
        .filter(|&l| l >= first_usable)
        .ok_or_else(|| layout(format!("a disk of {disk_lbas} blocks has no room")))?;
    let mut entries = vec![0u8; entries_bytes as usize];
    let mut previous_end = first_usable;
    for (index, part) in partitions.iter().enumerate() {
        if part.first_lba < previous_end || part.last_lba < part.first_lba {
            return Err(layout(format!("{} overlaps or is empty", part.name)));
        }
        if part.last_lba > last_usable {
            return Err(layout(format!("{} ends beyond the usable area", part.name)));
        }
        previous_end = part.last_lba + 1;
        let at = index * ENTRY_SIZE as usize;
        write_bytes(&mut entries, at + ENT_TYPE_GUID, &part.type_guid.0);
        write_bytes(&mut entries, at + ENT_UNIQUE_GUID, &part.unique_guid.0);
        write_u64(&mut entries, at + ENT_FIRST_LBA, part.first_lba);
        write_u64(&mut entries, at + ENT_LAST_LBA, part.last_lba);
        write_u64(&mut entries, at + ENT_ATTRIBUTES, part.attributes);
        for (j, unit) in part.name.encode_utf16().take(ENT_NAME_UNITS).enumerate() {
            write_bytes(&mut entries, at + ENT_NAME + 2 * j, &unit.to_le_bytes());
        }
    }
    let mut raw = vec![0u8; lba_size as usize];
    write_bytes(&mut raw, 0, SIGNATURE);
    write_u32(&mut raw, HDR_REVISION, REVISION_1_0);
    write_u32(&mut raw, HDR_SIZE, HEADER_SIZE);
    write_u64(&mut raw, HDR_FIRST_USABLE, first_usable);
    write_bytes(&mut raw, HDR_DISK_GUID, &disk_guid.0);
    write_u32(&mut raw, HDR_ENTRY_COUNT, ENTRY_COUNT);
    write_u32(&mut raw, HDR_ENTRY_SIZE, ENTRY_SIZE);
    let template = Header {
        raw,
        my_lba: 1,
        alternate_lba: disk_lbas - 1,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba: 2,
        entry_count: ENTRY_COUNT,
        entry_size: ENTRY_SIZE,
        entries_crc: 0,
    };
    let mut writes = vec![DiskWrite {
        offset: 0,
        bytes: protective_mbr(lba_size, disk_lbas),
        what: "protective MBR",
    }];
    writes.extend(rewrite(
        &template,
        2,
        lba_size,
        disk_lbas,
        last_usable,
        entries,
    ));
    Ok(writes)
}

/// The writes that replace a table with `entries` on a disk of `disk_lbas` blocks, the
/// backup copy moved to the disk's last blocks: backup entries, backup header, primary
/// entries (at `primary_entries_lba`), primary header. `template` is a header read from
/// the disk, so fields this code does not know are kept.
pub(crate) fn rewrite(
    template: &Header,
    primary_entries_lba: u64,
    lba_size: u64,
    disk_lbas: u64,
    last_usable: u64,
    entries: Vec<u8>,
) -> Vec<DiskWrite> {
    let entries_crc = crc32fast::hash(&entries);
    let backup_lba = disk_lbas - 1;
    let backup_entries_lba = backup_lba - template.entries_lbas(lba_size);
    let header = |my_lba: u64, alternate_lba: u64, entries_lba: u64| {
        let mut raw = template.raw.clone();
        write_u64(&mut raw, HDR_MY_LBA, my_lba);
        write_u64(&mut raw, HDR_ALTERNATE_LBA, alternate_lba);
        write_u64(&mut raw, HDR_LAST_USABLE, last_usable);
        write_u64(&mut raw, HDR_ENTRIES_LBA, entries_lba);
        write_u32(&mut raw, HDR_ENTRIES_CRC, entries_crc);
        write_u32(&mut raw, HDR_CRC, 0);
        let size = read_u32(&raw, HDR_SIZE) as usize;
        let crc = crc32fast::hash(raw.get(..size).unwrap_or_default());
        write_u32(&mut raw, HDR_CRC, crc);
        raw
    };
    vec![
        DiskWrite {
            offset: backup_entries_lba * lba_size,
            bytes: entries.clone(),
            what: "backup GPT entries",
        },
        DiskWrite {
            offset: backup_lba * lba_size,
            bytes: header(backup_lba, 1, backup_entries_lba),
            what: "backup GPT header",
        },
        DiskWrite {
            offset: primary_entries_lba * lba_size,
            bytes: entries,
            what: "primary GPT entries",
        },
        DiskWrite {
            offset: lba_size,
            bytes: header(1, backup_lba, primary_entries_lba),
            what: "primary GPT header",
        },
    ]
}

/// Applies writes in order, each flushed to the device (fsync) before the next begins, so a
/// power cut leaves a prefix of them on the disk and never a later write without an earlier.
pub fn apply_writes(disk: &File, writes: &[DiskWrite]) -> Result<(), Error> {
    for write in writes {
        disk.write_all_at(&write.bytes, write.offset)
            .and_then(|()| disk.sync_all())
            .map_err(|source| Error::GptWrite {
                what: write.what,
                offset: write.offset,
                source,
            })?;
    }
    Ok(())
}

/// LBA 0: one 0xEE record from LBA 1 over the whole disk (clamped to 32 bits).
pub(crate) fn protective_mbr(lba_size: u64, disk_lbas: u64) -> Vec<u8> {
    let mut mbr = vec![0u8; lba_size as usize];
    let record = MBR_RECORDS;
    write_bytes(&mut mbr, record + 1, &[0x00, 0x02, 0x00]); // CHS of LBA 1
    write_bytes(
        &mut mbr,
        record + 4,
        &[MBR_TYPE_PROTECTIVE, 0xff, 0xff, 0xff],
    );
    write_u32(&mut mbr, record + 8, 1);
    let size = u32::try_from(disk_lbas - 1).unwrap_or(u32::MAX);
    write_u32(&mut mbr, record + 12, size);
    write_bytes(&mut mbr, 510, &[0x55, 0xaa]);
    mbr
}

/// The MBR with its protective record resized to a grown disk, or `None` when there is
/// nothing to fix or no single protective record (a hybrid MBR is left alone).
pub(crate) fn protective_mbr_for(mbr: &[u8], disk_lbas: u64) -> Option<Vec<u8>> {
    if mbr.len() < 512 || mbr.get(510..512) != Some([0x55, 0xaa].as_slice()) {
        return None;
    }
    let protective: Vec<usize> = (0..4)
        .map(|i| MBR_RECORDS + i * MBR_RECORD_SIZE)
        .filter(|&r| mbr.get(r + 4) == Some(&MBR_TYPE_PROTECTIVE))
        .collect();
    let &[record] = protective.as_slice() else {
        return None;
    };
    if read_u32(mbr, record + 8) != 1 {
        return None;
    }
    let size = u32::try_from(disk_lbas - 1).unwrap_or(u32::MAX);
    if read_u32(mbr, record + 12) == size {
        return None;
    }
    let mut patched = mbr.to_vec();
    write_u32(&mut patched, record + 12, size);
    Some(patched)
}
