//! A GPT reader and the one edit PID 1 makes: growing the last partition to the end of a disk
//! that is bigger than the image written to it.
//!
//! ```text
//!  LBA 0        protective MBR (one 0xEE record covering the disk)
//!  LBA 1        primary header ──▶ entries at LBA 2.. (128 × 128 bytes = 32 LBAs)
//!  ...          partitions: p1 ESP, p2 root-a, p3 root-b, p4 data (last, grown here)
//!  last-32..-2  backup entries
//!  last LBA     backup header
//! ```
//! Hand-written rather than the gpt crate: its reader asserts on the entry size and its
//! writer re-packs entries (renumbering partitions after a gap) and leaves the protective MBR
//! alone; PID 1 must not panic on a disk it merely looks at, and must not renumber anything.
//! Edits are done on the raw bytes so fields this code does not know survive unchanged.

use thiserror::Error;

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
const MIN_HEADER_SIZE: u32 = 92;
const ENTRY_MIN_SIZE: u32 = 128;
/// UEFI allows any entry count, but no real table is bigger than this; it bounds allocation.
const MAX_ENTRY_ARRAY_BYTES: u64 = 1024 * 1024;
/// New partition ends are aligned like parted and sfdisk align them.
const ALIGNMENT_BYTES: u64 = 1024 * 1024;

// Header field offsets (UEFI 2.10, table 5.20).
const HDR_SIZE: usize = 12;
const HDR_CRC: usize = 16;
const HDR_MY_LBA: usize = 24;
const HDR_ALTERNATE_LBA: usize = 32;
const HDR_FIRST_USABLE: usize = 40;
const HDR_LAST_USABLE: usize = 48;
const HDR_ENTRIES_LBA: usize = 72;
const HDR_ENTRY_COUNT: usize = 80;
const HDR_ENTRY_SIZE: usize = 84;
const HDR_ENTRIES_CRC: usize = 88;
// Entry field offsets.
const ENT_UNIQUE_GUID: usize = 16;
const ENT_FIRST_LBA: usize = 32;
const ENT_LAST_LBA: usize = 40;
// Protective MBR.
const MBR_RECORDS: usize = 446;
const MBR_RECORD_SIZE: usize = 16;
const MBR_TYPE_PROTECTIVE: u8 = 0xee;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GptError {
    #[error("no GPT signature")]
    NoSignature,
    #[error("GPT header is damaged: {0}")]
    BadHeader(&'static str),
    #[error("GPT header checksum mismatch")]
    HeaderChecksum,
    #[error("GPT partition entries checksum mismatch")]
    EntriesChecksum,
    #[error("partition {0} is not in the GPT")]
    NoSuchPartition(u32),
    #[error("partition {0} is not the last partition on the disk, so it cannot grow")]
    NotLast(u32),
    #[error("the disk ({disk_lbas} blocks) is smaller than its GPT says ({needed} blocks)")]
    DiskTooSmall { disk_lbas: u64, needed: u64 },
    #[error("partition {0} lies outside the usable area of the disk")]
    BadPartition(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The header sector as read; edits patch these bytes.
    pub raw: Vec<u8>,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

impl Header {
    /// Bytes of the entry array.
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }

    /// Logical blocks the entry array takes.
    pub fn entries_lbas(&self, lba_size: u64) -> u64 {
        self.entries_bytes().div_ceil(lba_size)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based, as the kernel numbers partitions (`vda4` is number 4).
    pub number: u32,
    pub unique_guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
}

/// Parses and checks a header sector (LBA 1, or the backup at the last LBA).
pub fn parse_header(sector: &[u8]) -> Result<Header, GptError> {
    if sector.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(GptError::NoSignature);
    }
    let size = read_u32(sector, HDR_SIZE);
    if size < MIN_HEADER_SIZE || size as usize > sector.len() {
        return Err(GptError::BadHeader("header size out of range"));
    }
    let mut copy = sector.get(..size as usize).unwrap_or_default().to_vec();
    write_u32(&mut copy, HDR_CRC, 0);
    if crc32fast::hash(&copy) != read_u32(sector, HDR_CRC) {
        return Err(GptError::HeaderChecksum);
    }
    let header = Header {
        raw: sector.to_vec(),
        my_lba: read_u64(sector, HDR_MY_LBA),
        alternate_lba: read_u64(sector, HDR_ALTERNATE_LBA),
        first_usable: read_u64(sector, HDR_FIRST_USABLE),
        last_usable: read_u64(sector, HDR_LAST_USABLE),
        entries_lba: read_u64(sector, HDR_ENTRIES_LBA),
        entry_count: read_u32(sector, HDR_ENTRY_COUNT),
        entry_size: read_u32(sector, HDR_ENTRY_SIZE),
        entries_crc: read_u32(sector, HDR_ENTRIES_CRC),
    };
    if header.entry_size < ENTRY_MIN_SIZE || !header.entry_size.is_power_of_two() {
        return Err(GptError::BadHeader(
            "entry size is not a power of two >= 128",
        ));
    }
    if header.entries_bytes() > MAX_ENTRY_ARRAY_BYTES {
        return Err(GptError::BadHeader("entry array too large"));
    }
    Ok(header)
}

/// Parses and checks the entry array the header points to; unused entries are skipped.
pub fn parse_entries(header: &Header, array: &[u8]) -> Result<Vec<Entry>, GptError> {
    let array = array
        .get(..header.entries_bytes() as usize)
        .ok_or(GptError::BadHeader(
            "entry array shorter than the header says",
        ))?;
    if crc32fast::hash(array) != header.entries_crc {
        return Err(GptError::EntriesChecksum);
    }
    let mut entries = Vec::new();
    for (index, entry) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let type_guid = entry.get(..16).unwrap_or_default();
        if type_guid.iter().all(|&b| b == 0) {
            continue;
        }
        entries.push(Entry {
            number: index as u32 + 1,
            unique_guid: guid_string(entry, ENT_UNIQUE_GUID),
            first_lba: read_u64(entry, ENT_FIRST_LBA),
            last_lba: read_u64(entry, ENT_LAST_LBA),
        });
    }
    Ok(entries)
}

/// A GUID as the kernel and blkid print it: lower-case, hyphenated, with the first three
/// fields stored little-endian on disk.
pub fn guid_string(bytes: &[u8], offset: usize) -> String {
    let b = |i: usize| bytes.get(offset + i).copied().unwrap_or(0);
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b(3),
        b(2),
        b(1),
        b(0),
        b(5),
        b(4),
        b(7),
        b(6),
        b(8),
        b(9),
        b(10),
        b(11),
        b(12),
        b(13),
        b(14),
        b(15)
    )
}

/// One write of a [`GrowPlan`]: `bytes` at byte `offset` of the whole disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskWrite {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub what: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowPlan {
    pub partition: u32,
    pub first_lba: u64,
    pub old_last_lba: u64,
    pub new_last_lba: u64,
    /// In order: backup copy first, so a power cut half-way leaves the old primary intact
    /// and a valid (if not yet grown) table.
    pub writes: Vec<DiskWrite>,
}

/// What growing partition `number` to the end of a disk of `disk_lbas` blocks takes: the
/// entry's new end, a primary and a backup header with the new `last_usable`, the backup
/// table moved to the disk's last blocks, and the protective MBR's size. `None` when the
/// partition already ends where it would end.
pub fn plan_grow(
    mbr: &[u8],
    primary: &Header,
    entries: &[u8],
    lba_size: u64,
    disk_lbas: u64,
    number: u32,
) -> Result<Option<GrowPlan>, GptError> {
    let table = parse_entries(primary, entries)?;
    let target = table
        .iter()
        .find(|e| e.number == number)
        .ok_or(GptError::NoSuchPartition(number))?;
    if table
        .iter()
        .any(|e| e.number != number && e.last_lba >= target.first_lba)
    {
        return Err(GptError::NotLast(number));
    }
    if target.first_lba < primary.first_usable
        || target.first_lba > target.last_lba
        || target.last_lba > primary.last_usable
    {
        return Err(GptError::BadPartition(number));
    }
    let entries_lbas = primary.entries_lbas(lba_size);
    // Values come from disk; checked so a bogus (if checksummed) header cannot wrap around.
    let needed = primary
        .last_usable
        .saturating_add(entries_lbas)
        .saturating_add(2);
    if disk_lbas < needed {
        return Err(GptError::DiskTooSmall { disk_lbas, needed });
    }
    let backup_lba = disk_lbas - 1;
    let backup_entries_lba = backup_lba - entries_lbas;
    let last_usable = backup_entries_lba - 1;
    let align = (ALIGNMENT_BYTES / lba_size).max(1);
    let aligned_end = (last_usable + 1) / align * align;
    let new_last_lba = aligned_end.saturating_sub(1).max(target.last_lba);
    if new_last_lba == target.last_lba && primary.alternate_lba == backup_lba {
        return Ok(None);
    }

    let mut new_entries = entries
        .get(..primary.entries_bytes() as usize)
        .unwrap_or_default()
        .to_vec();
    let entry_offset = (number as usize - 1) * primary.entry_size as usize;
    write_u64(&mut new_entries, entry_offset + ENT_LAST_LBA, new_last_lba);
    let entries_crc = crc32fast::hash(&new_entries);

    let new_primary = patched_header(
        primary,
        primary.my_lba,
        backup_lba,
        last_usable,
        primary.entries_lba,
        entries_crc,
    );
    let new_backup = patched_header(
        primary,
        backup_lba,
        primary.my_lba,
        last_usable,
        backup_entries_lba,
        entries_crc,
    );

    let mut writes = vec![
        DiskWrite {
            offset: backup_entries_lba * lba_size,
            bytes: new_entries.clone(),
            what: "backup GPT entries",
        },
        DiskWrite {
            offset: backup_lba * lba_size,
            bytes: new_backup,
            what: "backup GPT header",
        },
        DiskWrite {
            offset: primary.entries_lba * lba_size,
            bytes: new_entries,
            what: "primary GPT entries",
        },
        DiskWrite {
            offset: primary.my_lba * lba_size,
            bytes: new_primary,
            what: "primary GPT header",
        },
    ];
    if let Some(mbr) = protective_mbr_for(mbr, disk_lbas) {
        writes.push(DiskWrite {
            offset: 0,
            bytes: mbr,
            what: "protective MBR",
        });
    }
    // The old backup header now sits inside the grown partition; a stale "EFI PART" there
    // could be mistaken for a table by a tool scanning for one.
    if primary.alternate_lba != backup_lba
        && primary.alternate_lba > target.last_lba
        && primary.alternate_lba <= new_last_lba
    {
        writes.push(DiskWrite {
            offset: primary.alternate_lba * lba_size,
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

fn patched_header(
    template: &Header,
    my_lba: u64,
    alternate_lba: u64,
    last_usable: u64,
    entries_lba: u64,
    entries_crc: u32,
) -> Vec<u8> {
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
}

/// The MBR with its protective record covering the whole (grown) disk, or `None` when there
/// is no protective record to fix (a hybrid MBR is left alone).
fn protective_mbr_for(mbr: &[u8], disk_lbas: u64) -> Option<Vec<u8>> {
    if mbr.len() < 512 || mbr.get(510..512) != Some([0x55, 0xaa].as_slice()) {
        return None;
    }
    let records: Vec<usize> = (0..4).map(|i| MBR_RECORDS + i * MBR_RECORD_SIZE).collect();
    let protective: Vec<usize> = records
        .iter()
        .copied()
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
    let mut patched = mbr.get(..512).unwrap_or_default().to_vec();
    write_u32(&mut patched, record + 12, size);
    Some(patched)
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut field = [0u8; 4];
    if let Some(src) = bytes.get(offset..offset + 4) {
        field.copy_from_slice(src);
    }
    u32::from_le_bytes(field)
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    if let Some(src) = bytes.get(offset..offset + 8) {
        field.copy_from_slice(src);
    }
    u64::from_le_bytes(field)
}

fn write_u32(bytes: &mut [u8], offset: usize, value: u32) {
    if let Some(dst) = bytes.get_mut(offset..offset + 4) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

fn write_u64(bytes: &mut [u8], offset: usize, value: u64) {
    if let Some(dst) = bytes.get_mut(offset..offset + 8) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
pub mod tests;
