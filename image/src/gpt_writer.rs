//! Writes a protective MBR and both GPT copies for a `DiskPlan`.
//!
//! Hand-written (about a hundred lines) instead of the `gpt` crate because the builder needs
//! exact, reproducible bytes: a fixed 128-entry array, derived GUIDs and no reads of the
//! target. The device side reads and grows the table with its own code in init.

use std::io::{Seek, SeekFrom, Write};

use uuid::Uuid;

use crate::error::{IoContext, Result};
use crate::layout::{DiskPlan, SECTOR};

const ENTRY_COUNT: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ENTRIES_SECTORS: u64 = ENTRY_COUNT * ENTRY_SIZE / SECTOR;

pub struct GptIds {
    pub disk: Uuid,
    /// Unique partition GUIDs (PARTUUIDs) in plan order.
    pub partitions: [Uuid; 4],
}

pub fn write_gpt<W: Write + Seek>(out: &mut W, plan: &DiskPlan, ids: &GptIds) -> Result<()> {
    let total_sectors = plan.total_size / SECTOR;
    let last_lba = total_sectors - 1;
    let entries = partition_entries(plan, ids)?;
    let entries_crc = crc32fast::hash(&entries);

    let first_usable = 2 + ENTRIES_SECTORS;
    let last_usable = last_lba - 1 - ENTRIES_SECTORS;
    let primary = header(
        1,
        last_lba,
        2,
        first_usable,
        last_usable,
        ids.disk,
        entries_crc,
    );
    let backup_entries_lba = last_lba - ENTRIES_SECTORS;
    let backup = header(
        last_lba,
        1,
        backup_entries_lba,
        first_usable,
        last_usable,
        ids.disk,
        entries_crc,
    );

    let write_at = |out: &mut W, lba: u64, bytes: &[u8]| -> Result<()> {
        out.seek(SeekFrom::Start(lba * SECTOR))
            .context(|| "seek in disk image".into())?;
        out.write_all(bytes)
            .context(|| "write the partition table".into())
    };
    write_at(out, 0, &protective_mbr(total_sectors))?;
    write_at(out, 1, &primary)?;
    write_at(out, 2, &entries)?;
    write_at(out, backup_entries_lba, &entries)?;
    write_at(out, last_lba, &backup)?;
    Ok(())
}

fn protective_mbr(total_sectors: u64) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    entry[4] = 0xEE; // GPT protective
    entry[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(total_sectors - 1).unwrap_or(u32::MAX);
    entry[12..16].copy_from_slice(&size.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

fn partition_entries(plan: &DiskPlan, ids: &GptIds) -> Result<Vec<u8>> {
    let mut entries = vec![0u8; (ENTRY_COUNT * ENTRY_SIZE) as usize];
    for (i, (part, guid)) in plan.partitions.iter().zip(ids.partitions).enumerate() {
        let type_guid = Uuid::parse_str(part.type_guid)
            .map_err(|e| crate::error::Error::image(format!("bad type GUID: {e}")))?;
        let e = &mut entries[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&type_guid.to_bytes_le());
        e[16..32].copy_from_slice(&guid.to_bytes_le());
        let first = part.offset / SECTOR;
        let last = (part.offset + part.size) / SECTOR - 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        // Attributes stay 0. The name is UTF-16LE, at most 36 code units.
        for (j, unit) in part.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    Ok(entries)
}

fn header(
    current: u64,
    backup: u64,
    entries_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk: Uuid,
    entries_crc: u32,
) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&current.to_le_bytes());
    h[32..40].copy_from_slice(&backup.to_le_bytes());
    h[40..48].copy_from_slice(&first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&disk.to_bytes_le());
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRY_COUNT as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[0..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::DiskPlan;

    #[test]
    fn the_gpt_crate_reads_back_what_we_wrote() {
        let plan = DiskPlan::new(40, 20, 10).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(plan.total_size).unwrap();
        let ids = GptIds {
            disk: Uuid::from_u128(1),
            partitions: [2, 3, 4, 5].map(Uuid::from_u128),
        };
        write_gpt(&mut file.as_file(), &plan, &ids).unwrap();

        let disk = gpt::GptConfig::new()
            .writable(false)
            .open(file.path())
            .unwrap();
        assert_eq!(*disk.guid(), ids.disk);
        let parts: Vec<_> = disk.partitions().values().collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1].name, "root-a");
        assert_eq!(parts[1].part_guid, ids.partitions[1]);
        assert_eq!(parts[3].first_lba * 512, plan.partitions[3].offset);
        assert!(disk.backup_header().is_ok());
    }
}
