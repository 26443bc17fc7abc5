//! Our GPT against the `gpt` crate (an independent implementation), its power-cut order, and
//! its reader against random, truncated and garbled bytes.

use std::io::Cursor;

use gpt::GptConfig;

use super::*;

const LBA: u64 = 512;
const MIB: u64 = 1024 * 1024;
const DATA: u32 = 4;

fn guid(n: u8) -> Guid {
    Guid([n; 16])
}

/// A 16 MiB image laid out like the builder's: ESP, root-a, root-b, data (marked new).
fn image(image_bytes: u64) -> Vec<u8> {
    let mut disk = vec![0u8; image_bytes as usize];
    let mut partitions = Vec::new();
    let mut start = MIB / LBA;
    for (i, (name, mib)) in [("ESP", 2), ("root-a", 4), ("root-b", 4), ("data", 2)]
        .into_iter()
        .enumerate()
    {
        let end = start + mib * MIB / LBA;
        partitions.push(NewPartition {
            type_guid: guid(0x10 + i as u8),
            unique_guid: guid(0x20 + i as u8),
            first_lba: start,
            last_lba: end - 1,
            attributes: if name == "data" { ATTR_DATA_NEW } else { 0 },
            name: name.to_owned(),
        });
        start = end;
    }
    let writes = create(guid(1), LBA, image_bytes / LBA, &partitions).expect("create");
    apply(&mut disk, &writes);
    disk
}

fn apply(disk: &mut [u8], writes: &[DiskWrite]) {
    for write in writes {
        let start = write.offset as usize;
        disk[start..start + write.bytes.len()].copy_from_slice(&write.bytes);
    }
}

fn table(disk: &[u8]) -> Table {
    read_table(disk, LBA, disk.len() as u64 / LBA).expect("table")
}

fn grown(image_bytes: u64, disk_bytes: u64) -> (Vec<u8>, GrowPlan) {
    let mut disk = image(image_bytes);
    disk.resize(disk_bytes as usize, 0);
    let plan = plan_grow(&table(&disk), DATA)
        .expect("plan")
        .expect("something to do");
    apply(&mut disk, &plan.writes);
    (disk, plan)
}

#[test]
fn the_gpt_crate_reads_what_we_wrote() {
    let disk = image(16 * MIB);
    let theirs = GptConfig::new()
        .only_valid_headers(true)
        .open_from_device(Cursor::new(disk.clone()))
        .expect("both headers valid");
    let ours = table(&disk);
    assert!(!ours.from_backup);
    assert_eq!(ours.entries.len(), 4);
    assert_eq!(theirs.guid().to_bytes_le(), guid(1).0);
    for entry in &ours.entries {
        let partition = theirs.partitions().get(&entry.number).expect("partition");
        assert_eq!(
            entry.unique_guid.to_string(),
            partition.part_guid.hyphenated().to_string()
        );
        assert_eq!(partition.part_guid.to_bytes_le(), entry.unique_guid.0);
        assert_eq!(entry.first_lba, partition.first_lba);
        assert_eq!(entry.last_lba, partition.last_lba);
        assert_eq!(entry.attributes, partition.flags);
        assert_eq!(entry.name, partition.name);
    }
    assert_eq!(ours.entry(DATA).expect("data").attributes, ATTR_DATA_NEW);
    assert_eq!(
        theirs.primary_header().expect("primary").backup_lba,
        16 * MIB / LBA - 1
    );
}

#[test]
fn grows_the_last_partition_to_the_end_of_a_bigger_disk() {
    let disk_bytes = 64 * MIB;
    let (disk, plan) = grown(16 * MIB, disk_bytes);
    let last_lba = disk_bytes / LBA - 1;
    assert_eq!(plan.new_last_lba, 63 * MIB / LBA - 1);
    assert!(plan.new_last_lba > plan.old_last_lba);

    let theirs = GptConfig::new()
        .only_valid_headers(true)
        .open_from_device(Cursor::new(disk.clone()))
        .expect("both headers valid");
    let primary = theirs.primary_header().expect("primary");
    let backup = theirs.backup_header().expect("backup");
    assert_eq!(primary.backup_lba, last_lba);
    assert_eq!(backup.current_lba, last_lba);
    assert_eq!(backup.backup_lba, 1);
    assert_eq!(primary.last_usable, last_lba - 33);
    assert_eq!(backup.part_start, last_lba - 32);
    let data = theirs.partitions().get(&DATA).expect("data");
    assert_eq!(data.last_lba, plan.new_last_lba);
    assert_eq!(data.flags, ATTR_DATA_NEW, "the mark survives a grow");

    // The other partitions are untouched, and the old backup header is gone.
    let before = table(&image(16 * MIB));
    let after = table(&disk);
    assert_eq!(before.entries[..3], after.entries[..3]);
    let old_backup = (16 * MIB - LBA) as usize;
    assert!(disk[old_backup..old_backup + 8].iter().all(|&b| b == 0));
    // The protective MBR covers the grown disk.
    assert_eq!(read_u32(&disk, 446 + 12), last_lba as u32);
    // Twice is once.
    assert_eq!(plan_grow(&table(&disk), DATA).expect("plan"), None);
}

#[test]
fn clearing_the_mark_touches_only_the_mark() {
    let (mut disk, _) = grown(16 * MIB, 32 * MIB);
    let before = table(&disk);
    let writes = plan_set_attributes(&before, DATA, 0)
        .expect("plan")
        .expect("something to do");
    apply(&mut disk, &writes);
    let after = table(&disk);
    assert_eq!(after.entry(DATA).expect("data").attributes, 0);
    assert_eq!(after.entries[..3], before.entries[..3]);
    assert_eq!(after.header.last_usable, before.header.last_usable);
    assert_eq!(plan_set_attributes(&after, DATA, 0).expect("plan"), None);
    GptConfig::new()
        .only_valid_headers(true)
        .open_from_device(Cursor::new(disk))
        .expect("both headers valid");
}

/// The power cut: after any prefix of the writes (and with the next write torn half-way),
/// the disk reads as either the old table or the new one, never as no table.
#[test]
fn every_prefix_of_a_rewrite_leaves_a_readable_table() {
    let mut image_disk = image(16 * MIB);
    image_disk.resize((32 * MIB) as usize, 0);
    let old = table(&image_disk);
    let grow = plan_grow(&old, DATA).expect("plan").expect("grow");
    let mut grown_disk = image_disk.clone();
    apply(&mut grown_disk, &grow.writes);
    let mark = plan_set_attributes(&table(&grown_disk), DATA, 0)
        .expect("plan")
        .expect("clear");
    for (start, writes) in [(image_disk, grow.writes), (grown_disk, mark)] {
        let before = table(&start).entries;
        let mut after_all = start.clone();
        apply(&mut after_all, &writes);
        let after = table(&after_all).entries;
        for done in 0..=writes.len() {
            for torn in [false, true] {
                let mut disk = start.clone();
                apply(&mut disk, &writes[..done]);
                if torn && let Some(next) = writes.get(done) {
                    let half = DiskWrite {
                        offset: next.offset,
                        bytes: next.bytes[..next.bytes.len() / 2].to_vec(),
                        what: next.what,
                    };
                    apply(&mut disk, &[half]);
                }
                let read = table(&disk).entries;
                assert!(
                    read == before || read == after,
                    "after {done} writes (torn: {torn}) the table is neither old nor new"
                );
            }
        }
    }
}

#[test]
fn a_damaged_primary_header_falls_back_to_the_backup() {
    let mut disk = image(16 * MIB);
    disk[512 + 30] ^= 0xff;
    let read = table(&disk);
    assert!(read.from_backup);
    assert_eq!(read.header.my_lba, 16 * MIB / LBA - 1);
    assert_eq!(read.entries, table(&image(16 * MIB)).entries);
}

#[test]
fn a_damaged_primary_entry_array_falls_back_to_the_backup() {
    let mut disk = image(16 * MIB);
    disk[2 * 512 + 200] ^= 0xff;
    let read = table(&disk);
    assert!(read.from_backup);
    assert_eq!(read.entries, table(&image(16 * MIB)).entries);
}

#[test]
fn the_backup_is_found_at_the_alternate_lba_before_the_last_lba() {
    // An image written to a bigger disk: the backup sits at the image's end, not the disk's.
    let mut disk = image(16 * MIB);
    disk.resize((32 * MIB) as usize, 0);
    disk[2 * 512 + 200] ^= 0xff;
    let read = table(&disk);
    assert!(read.from_backup);
    assert_eq!(read.header.my_lba, 16 * MIB / LBA - 1);
}

#[test]
fn rewriting_from_the_backup_restores_the_primary() {
    let mut disk = image(16 * MIB);
    disk[512..1024].fill(0);
    let from_backup = table(&disk);
    assert!(from_backup.from_backup);
    let writes = plan_set_attributes(&from_backup, DATA, 0)
        .expect("plan")
        .expect("writes");
    apply(&mut disk, &writes);
    let read = table(&disk);
    assert!(!read.from_backup);
    assert_eq!(read.entry(DATA).expect("data").attributes, 0);
}

#[test]
fn both_copies_damaged_is_an_error_naming_both() {
    let mut disk = image(16 * MIB);
    disk[512 + 30] ^= 0xff;
    let last = disk.len() - 512;
    disk[last + 30] ^= 0xff;
    let err = read_table(disk.as_slice(), LBA, 16 * MIB / LBA).expect_err("no table");
    let text = err.to_string();
    assert!(
        text.contains("primary") && text.contains("backup"),
        "{text}"
    );
}

#[test]
fn refusals_name_what_is_wrong() {
    let mut disk = image(16 * MIB);
    disk.resize((32 * MIB) as usize, 0);
    let read = table(&disk);
    assert!(matches!(
        plan_grow(&read, 3),
        Err(crate::Error::GptNotLast { number: 3 })
    ));
    assert!(matches!(
        plan_grow(&read, 9),
        Err(crate::Error::GptNoSuchPartition { number: 9 })
    ));
    let mut small = read.clone();
    small.disk_lbas = 8 * MIB / LBA;
    assert!(matches!(
        plan_grow(&small, DATA),
        Err(crate::Error::GptDiskTooSmall { .. })
    ));
}

#[test]
fn hybrid_or_missing_mbrs_are_left_alone() {
    use super::write::protective_mbr_for;
    assert_eq!(protective_mbr_for(&[0u8; 512], 100), None);
    let mut mbr = [0u8; 512];
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr[446 + 4] = 0xee;
    mbr[446 + 8] = 1;
    mbr[462 + 4] = 0xee;
    assert_eq!(
        protective_mbr_for(&mbr, 100),
        None,
        "two protective records: hybrid"
    );
    mbr[462 + 4] = 0x83;
    let patched = protective_mbr_for(&mbr, 100).expect("patched");
    assert_eq!(&patched[446 + 12..446 + 16], &99u32.to_le_bytes());
}

#[test]
fn guids_print_mixed_endian() {
    let bytes = [
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    assert_eq!(
        Guid(bytes).to_string(),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
}

/// xorshift64*: a fixed-seed source of garbage, so `make test` runs the same inputs each time.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What the fuzz target (board-support/fuzz) does at length, done briefly with a fixed seed:
/// random, truncated and garbled disks must read as a table or an error, never a panic.
#[test]
fn the_reader_survives_random_truncated_and_garbled_disks() {
    let mut garbage = Garbage(0x5eed_cafe_f00d_d00d);
    // 256 blocks: tables at both ends, two partitions between them.
    let valid = {
        let mut d = vec![0u8; 256 * LBA as usize];
        let part = |n: u8, first: u64, last: u64| NewPartition {
            type_guid: guid(n),
            unique_guid: guid(n + 1),
            first_lba: first,
            last_lba: last,
            attributes: ATTR_DATA_NEW,
            name: "p".into(),
        };
        let parts = [
            part(1, 34, 100),
            part(2, 101, 150),
            part(3, 151, 160),
            part(4, 161, 200),
        ];
        apply(
            &mut d,
            &create(guid(1), LBA, 256, &parts).expect("a small table"),
        );
        d
    };
    let small = {
        let mut d = vec![0u8; 64 * 1024];
        apply(
            &mut d,
            &create(guid(1), LBA, 128, &[]).expect("an empty table"),
        );
        d
    };
    assert_eq!(table(&valid).entries.len(), 4);
    for round in 0..3000 {
        let mut disk = if round % 2 == 0 {
            small.clone()
        } else {
            valid.clone()
        };
        match round % 5 {
            0 => disk.iter_mut().for_each(|b| *b = garbage.next() as u8),
            1 => disk.truncate(garbage.below(disk.len())),
            _ => {
                for _ in 0..=garbage.below(16) {
                    let at = garbage.below(disk.len());
                    disk[at] = garbage.next() as u8;
                }
            }
        }
        let lbas = [disk.len() as u64 / LBA, garbage.next() % 1_000_000, 0, 3];
        for disk_lbas in lbas {
            let _ = read_table(disk.as_slice(), LBA, disk_lbas);
            let _ = read_table(disk.as_slice(), 4096, disk_lbas);
        }
        if let Ok(read) = read_table(disk.as_slice(), LBA, disk.len() as u64 / LBA) {
            let _ = plan_grow(&read, DATA);
            let _ = plan_set_attributes(&read, DATA, 0);
        }
        let _ = parse_header(disk.get(512..1024).unwrap_or(&[]), 1, 1 << 20);
    }
}
