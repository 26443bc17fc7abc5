//! Growing the data partition to the end of a disk bigger than the image written to it: the
//! GPT first (backup, then primary, each flushed: board_support::gpt), then the kernel's
//! idea of the partition (BLKPG). A cut in between is finished on the next boot, which finds
//! the table grown and the kernel reading it at boot.

use board_support::block_devices::Partition;
use board_support::gpt::{self, Table};

use crate::error::Error;
use crate::{blkpg, table_write};

/// Whether the partition grew.
pub fn grow_to_disk_end(partition: &Partition, table: &Table) -> Result<bool, Error> {
    let table_error = |step, source| Error::TableWrite {
        disk: partition.disk.clone(),
        step,
        source,
    };
    let Some(plan) =
        gpt::plan_grow(table, partition.number).map_err(|e| table_error("plan the grow", e))?
    else {
        return Ok(false);
    };
    let disk = table_write::apply(partition, &plan.writes, "grow")?;
    let lba = table.lba_size;
    let start = plan.first_lba * lba;
    let length = (plan.new_last_lba - plan.first_lba + 1) * lba;
    blkpg::resize_partition(&disk, partition.number, start, length).map_err(|e| {
        Error::io(
            "tell the kernel (BLKPG_RESIZE_PARTITION) about",
            &partition.dev_path,
            e,
        )
    })?;
    progress!(
        "grown partition={} from_mib={} to_mib={}",
        partition.number,
        ((plan.old_last_lba - plan.first_lba + 1) * lba) >> 20,
        length >> 20
    );
    Ok(true)
}
