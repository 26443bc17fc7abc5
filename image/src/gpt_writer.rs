//! The disk image's GPT, written with board-support's GPT module (the same code the box uses
//! to read and grow it): a protective MBR, both copies, 128 entries, derived GUIDs, and the
//! data partition marked new (`gpt::ATTR_DATA_NEW`), which is what allows the box to format
//! it on first boot (docs/boot-contract.md).

use std::io::{Seek, SeekFrom, Write};

use board_support::gpt::{self, Guid, NewPartition};
use uuid::Uuid;

use crate::error::{Error, IoContext, Result};
use crate::layout::{DATA_NAME, DiskPlan, SECTOR};

pub struct GptIds {
    pub disk: Uuid,
    /// Unique partition GUIDs (PARTUUIDs) in plan order.
    pub partitions: Vec<Uuid>,
}

pub fn write_gpt<W: Write + Seek>(out: &mut W, plan: &DiskPlan, ids: &GptIds) -> Result<()> {
    let mut partitions = Vec::new();
    for (part, guid) in plan.partitions.iter().zip(&ids.partitions) {
        let type_guid = Uuid::parse_str(part.type_guid)
            .map_err(|e| Error::image(format!("bad type GUID {}: {e}", part.type_guid)))?;
        partitions.push(NewPartition {
            type_guid: Guid(type_guid.to_bytes_le()),
            unique_guid: Guid(guid.to_bytes_le()),
            first_lba: part.offset / SECTOR,
            last_lba: (part.offset + part.size) / SECTOR - 1,
            attributes: if part.name == DATA_NAME {
                gpt::ATTR_DATA_NEW
            } else {
                0
            },
            name: part.name.to_owned(),
        });
    }
    let writes = gpt::create(
        Guid(ids.disk.to_bytes_le()),
        SECTOR,
        plan.total_size / SECTOR,
        &partitions,
    )
    .map_err(|e| Error::image(e.to_string()))?;
    for write in writes {
        out.seek(SeekFrom::Start(write.offset))
            .context(|| "seek in disk image".into())?;
        out.write_all(&write.bytes)
            .context(|| format!("write the {}", write.what))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::DiskPlan;

    #[test]
    fn the_gpt_crate_reads_back_what_we_wrote() {
        let plan = DiskPlan::new(&board_support::board::X86_64, 40, 20, 10).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(plan.total_size).unwrap();
        let ids = GptIds {
            disk: Uuid::from_u128(1),
            partitions: [2, 3, 4, 5].map(Uuid::from_u128).to_vec(),
        };
        write_gpt(&mut file.as_file(), &plan, &ids).unwrap();

        let disk = ::gpt::GptConfig::new()
            .writable(false)
            .only_valid_headers(true)
            .open(file.path())
            .unwrap();
        assert_eq!(*disk.guid(), ids.disk);
        let parts: Vec<_> = disk.partitions().values().collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1].name, "root-a");
        assert_eq!(parts[1].part_guid, ids.partitions[1]);
        assert_eq!(parts[3].first_lba * 512, plan.partitions[3].offset);
        assert_eq!(parts[3].flags, board_support::gpt::ATTR_DATA_NEW);
        assert_eq!(parts[0].flags, 0);
        assert!(disk.backup_header().is_ok());
    }
}
