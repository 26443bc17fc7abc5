//! Fuzzes the GPT reader (and the edits planned from what it read) with arbitrary disks:
//! a table or an error, never a panic, a hang or a huge allocation.
#![no_main]

use board_support::gpt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|disk: &[u8]| {
    for lba_size in [512u64, 4096] {
        let lbas = disk.len() as u64 / lba_size;
        for disk_lbas in [lbas, lbas.saturating_mul(2), u64::MAX / lba_size] {
            if let Ok(table) = gpt::read_table(disk, lba_size, disk_lbas) {
                for number in 1..=4 {
                    let _ = gpt::plan_grow(&table, number);
                    let _ = gpt::plan_set_attributes(&table, number, 0);
                }
            }
        }
    }
});
