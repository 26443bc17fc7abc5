//! The one GPT implementation: the builder writes the image's table with it, the disk helper
//! reads it, grows the data partition and clears the data partition's "new" mark with it, and
//! the tests check it against the `gpt` crate. Hand-written because the device side must never
//! panic on a disk it merely looks at, must not renumber or repack entries, and must write in
//! an order that survives a power cut at any point; edits patch the raw bytes so fields this
//! code does not know survive unchanged.
//!
//! ```text
//!  LBA 0            protective MBR (one 0xEE record covering the disk)
//!  LBA 1            primary header ──▶ entries at LBA 2.. (128 × 128 bytes = 32 LBAs)
//!  ...              partitions: p1 ESP, p2 root-a, p3 root-b, p4 data (last, grown)
//!  last-32..last-1  backup entries
//!  last LBA         backup header ──▶ backup entries
//! ```
//! Power-cut safety of every rewrite ([`write::rewrite`]): the backup copy is written first
//! (entries, flush, header, flush), then the primary (entries, flush, header, flush). Whatever
//! prefix of those writes reaches the disk, one of the two copies is whole and checksummed,
//! and [`read::read_table`] falls back to the backup (at the primary's alternate LBA, then at
//! the disk's last LBA) when the primary's header or its entry array fails its checksum.

mod grow;
mod read;
mod write;

pub use grow::{GrowPlan, plan_grow, plan_set_attributes};
pub use read::{ReadAt, Table, parse_entries, parse_header, read_table};
pub use write::{DiskWrite, NewPartition, apply_writes, create};

/// Attribute bit 48 of the data partition's entry (the type-specific range 48-63): "the
/// builder made this partition and nothing has formatted it yet". The disk helper formats
/// /data only while this bit is set, and clears it once mke2fs succeeded. It lives in the GPT,
/// outside the partition, because nothing inside the partition survives mke2fs (which may
/// discard or zero any block of it) or a torn write reliably; the GPT is rewritten in the
/// power-cut-safe order above, so a cut leaves either the old (marked) or the new (cleared)
/// table, never none. systemd's Discoverable Partitions spec uses bits 59-63; 48 is clear of
/// them.
pub const ATTR_DATA_NEW: u64 = 1 << 48;

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
pub const REVISION_1_0: u32 = 0x0001_0000;
pub const HEADER_SIZE: u32 = 92;
/// What the builder writes: 128 entries of 128 bytes (32 LBAs of 512 bytes).
pub const ENTRY_COUNT: u32 = 128;
pub const ENTRY_SIZE: u32 = 128;
/// UEFI allows any entry count, but no real table is bigger; bounds what a reader allocates.
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1024 * 1024;
/// Partition ends after a grow are aligned like parted and sfdisk align them.
pub const ALIGNMENT_BYTES: u64 = 1024 * 1024;

// Header field offsets (UEFI 2.10, table 5.20).
const HDR_REVISION: usize = 8;
const HDR_SIZE: usize = 12;
const HDR_CRC: usize = 16;
const HDR_MY_LBA: usize = 24;
const HDR_ALTERNATE_LBA: usize = 32;
const HDR_FIRST_USABLE: usize = 40;
const HDR_LAST_USABLE: usize = 48;
const HDR_DISK_GUID: usize = 56;
const HDR_ENTRIES_LBA: usize = 72;
const HDR_ENTRY_COUNT: usize = 80;
const HDR_ENTRY_SIZE: usize = 84;
const HDR_ENTRIES_CRC: usize = 88;
// Entry field offsets (UEFI 2.10, table 5.21).
const ENT_TYPE_GUID: usize = 0;
const ENT_UNIQUE_GUID: usize = 16;
const ENT_FIRST_LBA: usize = 32;
const ENT_LAST_LBA: usize = 40;
const ENT_ATTRIBUTES: usize = 48;
const ENT_NAME: usize = 56;
const ENT_NAME_UNITS: usize = 36;
// Protective MBR.
const MBR_RECORDS: usize = 446;
const MBR_RECORD_SIZE: usize = 16;
const MBR_TYPE_PROTECTIVE: u8 = 0xee;

/// A GUID in its on-disk byte order (the first three fields little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    fn at(bytes: &[u8], offset: usize) -> Guid {
        let mut guid = [0u8; 16];
        if let Some(src) = bytes.get(offset..offset + 16) {
            guid.copy_from_slice(src);
        }
        Guid(guid)
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

/// Lower-case and hyphenated, as the kernel and blkid print a PARTUUID.
impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
        for (i, &index) in order.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", b.get(index).copied().unwrap_or(0))?;
        }
        Ok(())
    }
}

/// A checked header, with the sector it came from (edits patch these bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub raw: Vec<u8>,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Guid,
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
        self.entries_bytes().div_ceil(lba_size.max(1))
    }
}

/// A used entry of the array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based, as the kernel numbers partitions (`vda4` is number 4).
    pub number: u32,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
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

fn write_bytes(bytes: &mut [u8], offset: usize, value: &[u8]) {
    if let Some(dst) = bytes.get_mut(offset..offset + value.len()) {
        dst.copy_from_slice(value);
    }
}

#[cfg(test)]
mod tests;
