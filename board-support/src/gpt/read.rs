//! Reading a GPT from a disk or image: the primary copy when it is whole, else the backup.
//! Every value comes from a disk that may be torn, garbled or hostile, so every field is
//! checked before it sizes an allocation or a read, and nothing here can panic.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::*;
use crate::error::Error;

/// Positional reads; a file, a block device or bytes in memory (tests, fuzzing).
pub trait ReadAt {
    fn read_exact_at_offset(&self, buffer: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at_offset(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buffer, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at_offset(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start.saturating_add(buffer.len()))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buffer.copy_from_slice(src);
        Ok(())
    }
}

/// The GPT of one disk as read, with what a rewrite needs.
#[derive(Clone, Debug)]
pub struct Table {
    /// LBA 0, `lba_size` bytes.
    pub mbr: Vec<u8>,
    /// The copy the table was read from.
    pub header: Header,
    /// The entry array that header checksums, `entries_bytes()` long.
    pub entries_raw: Vec<u8>,
    pub entries: Vec<Entry>,
    pub lba_size: u64,
    pub disk_lbas: u64,
    /// The primary copy was damaged and the backup was used.
    pub from_backup: bool,
}

impl Table {
    pub fn entry(&self, number: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.number == number)
    }

    pub fn entry_by_unique_guid(&self, partuuid: &str) -> Option<&Entry> {
        let wanted = partuuid.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|e| e.unique_guid.to_string() == wanted)
    }
}

/// Parses and checks the header sector found at `lba` of a disk of `disk_lbas` blocks.
pub fn parse_header(sector: &[u8], lba: u64, disk_lbas: u64) -> Result<Header, Error> {
    let bad = |reason: &'static str| Error::GptHeader { lba, reason };
    if sector.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(bad("no \"EFI PART\" signature"));
    }
    let size = read_u32(sector, HDR_SIZE) as usize;
    let covered = sector
        .get(..size)
        .filter(|_| size >= HEADER_SIZE as usize)
        .ok_or(bad("header size out of range"))?;
    let mut copy = covered.to_vec();
    write_u32(&mut copy, HDR_CRC, 0);
    if crc32fast::hash(&copy) != read_u32(sector, HDR_CRC) {
        return Err(Error::GptHeaderChecksum { lba });
    }
    let header = Header {
        raw: sector.to_vec(),
        my_lba: read_u64(sector, HDR_MY_LBA),
        alternate_lba: read_u64(sector, HDR_ALTERNATE_LBA),
        first_usable: read_u64(sector, HDR_FIRST_USABLE),
        last_usable: read_u64(sector, HDR_LAST_USABLE),
        disk_guid: Guid::at(sector, HDR_DISK_GUID),
        entries_lba: read_u64(sector, HDR_ENTRIES_LBA),
        entry_count: read_u32(sector, HDR_ENTRY_COUNT),
        entry_size: read_u32(sector, HDR_ENTRY_SIZE),
        entries_crc: read_u32(sector, HDR_ENTRIES_CRC),
    };
    if header.my_lba != lba {
        return Err(bad("header names another LBA as its own"));
    }
    if header.entry_size < ENTRY_SIZE || !header.entry_size.is_power_of_two() {
        return Err(bad("entry size is not a power of two >= 128"));
    }
    if header.entry_count == 0 || header.entries_bytes() > MAX_ENTRY_ARRAY_BYTES {
        return Err(bad("entry array empty or larger than 1 MiB"));
    }
    if header.first_usable > header.last_usable || header.last_usable >= disk_lbas {
        return Err(bad("usable area outside the disk"));
    }
    let sector_size = sector.len().max(1) as u64;
    let entries_end = header
        .entries_lba
        .saturating_add(header.entries_lbas(sector_size));
    if header.entries_lba < 1 || entries_end > disk_lbas {
        return Err(bad("entry array outside the disk"));
    }
    let overlaps_usable =
        header.entries_lba <= header.last_usable && entries_end > header.first_usable;
    if overlaps_usable || (header.entries_lba <= lba && lba < entries_end) {
        return Err(bad("entry array overlaps the header or the partitions"));
    }
    Ok(header)
}

/// Parses and checks the entry array `header` points to; unused entries are skipped.
pub fn parse_entries(header: &Header, array: &[u8]) -> Result<Vec<Entry>, Error> {
    let lba = header.entries_lba;
    let array = usize::try_from(header.entries_bytes())
        .ok()
        .and_then(|len| array.get(..len))
        .ok_or(Error::GptHeader {
            lba: header.my_lba,
            reason: "entry array shorter than the header says",
        })?;
    if crc32fast::hash(array) != header.entries_crc {
        return Err(Error::GptEntriesChecksum { lba });
    }
    let mut entries = Vec::new();
    for (index, raw) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let type_guid = Guid::at(raw, ENT_TYPE_GUID);
        if type_guid.is_zero() {
            continue;
        }
        let units: Vec<u16> = (0..ENT_NAME_UNITS)
            .map(|i| {
                u16::from(raw.get(ENT_NAME + 2 * i).copied().unwrap_or(0))
                    | u16::from(raw.get(ENT_NAME + 2 * i + 1).copied().unwrap_or(0)) << 8
            })
            .take_while(|&u| u != 0)
            .collect();
        entries.push(Entry {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            type_guid,
            unique_guid: Guid::at(raw, ENT_UNIQUE_GUID),
            first_lba: read_u64(raw, ENT_FIRST_LBA),
            last_lba: read_u64(raw, ENT_LAST_LBA),
            attributes: read_u64(raw, ENT_ATTRIBUTES),
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(entries)
}

/// Reads the GPT of a disk of `disk_lbas` blocks of `lba_size` bytes: the primary copy, or
/// the backup when the primary's header or entry array is damaged. The backup is looked for
/// at the primary header's alternate LBA (when that header is readable) and then at the
/// disk's last LBA, which differ after a grow was cut short.
pub fn read_table<D: ReadAt + ?Sized>(
    disk: &D,
    lba_size: u64,
    disk_lbas: u64,
) -> Result<Table, Error> {
    if !(512..=65536).contains(&lba_size) || !lba_size.is_power_of_two() || disk_lbas < 3 {
        return Err(Error::GptGeometry {
            lba_size,
            disk_lbas,
        });
    }
    let mbr = read(disk, 0, lba_size, lba_size, "protective MBR")?;
    let (primary_err, alternate) = match read_copy(disk, 1, lba_size, disk_lbas) {
        Ok(copy) => return Ok(copy.into_table(mbr, lba_size, disk_lbas, false)),
        Err(failed) => (failed.error, failed.alternate_lba),
    };
    let last = disk_lbas - 1;
    let mut candidates = vec![];
    if let Some(alternate) = alternate.filter(|&a| a > 1 && a < last) {
        candidates.push(alternate);
    }
    candidates.push(last);
    let mut backup_err = None;
    for lba in candidates {
        match read_copy(disk, lba, lba_size, disk_lbas) {
            Ok(copy) => return Ok(copy.into_table(mbr, lba_size, disk_lbas, true)),
            Err(failed) => backup_err = Some(failed.error),
        }
    }
    Err(Error::GptUnreadable {
        primary: Box::new(primary_err),
        backup: Box::new(backup_err.unwrap_or(Error::GptHeader {
            lba: last,
            reason: "not read",
        })),
    })
}

struct Copy {
    header: Header,
    entries_raw: Vec<u8>,
    entries: Vec<Entry>,
}

impl Copy {
    fn into_table(self, mbr: Vec<u8>, lba_size: u64, disk_lbas: u64, from_backup: bool) -> Table {
        Table {
            mbr,
            header: self.header,
            entries_raw: self.entries_raw,
            entries: self.entries,
            lba_size,
            disk_lbas,
            from_backup,
        }
    }
}

/// Why a copy was not read, and its header's alternate LBA when the header itself was whole
/// (that says where to look for the other copy).
struct CopyFailed {
    error: Error,
    alternate_lba: Option<u64>,
}

/// One copy: the header at `lba` and the entry array it names.
fn read_copy<D: ReadAt + ?Sized>(
    disk: &D,
    lba: u64,
    lba_size: u64,
    disk_lbas: u64,
) -> Result<Copy, CopyFailed> {
    let failed = |error, alternate_lba| CopyFailed {
        error,
        alternate_lba,
    };
    let sector = read(disk, lba, lba_size, lba_size, "GPT header").map_err(|e| failed(e, None))?;
    let header = parse_header(&sector, lba, disk_lbas).map_err(|e| failed(e, None))?;
    let alternate = Some(header.alternate_lba);
    let entries_raw = read(
        disk,
        header.entries_lba,
        lba_size,
        header.entries_bytes(),
        "GPT entries",
    )
    .map_err(|e| failed(e, alternate))?;
    let entries = parse_entries(&header, &entries_raw).map_err(|e| failed(e, alternate))?;
    Ok(Copy {
        header,
        entries_raw,
        entries,
    })
}

fn read<D: ReadAt + ?Sized>(
    disk: &D,
    lba: u64,
    lba_size: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    let offset = lba.saturating_mul(lba_size);
    let mut buffer = vec![0u8; usize::try_from(len).unwrap_or(0)];
    disk.read_exact_at_offset(&mut buffer, offset)
        .map_err(|source| Error::GptRead {
            what,
            offset,
            source,
        })?;
    Ok(buffer)
}
