//! The grow plan is checked against the gpt crate: it builds the image-sized disk, and after
//! our writes it must read both of our headers back as valid.

use std::io::{Cursor, Read, Seek, SeekFrom};

use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::{GptConfig, partition_types};

use super::*;

const LBA: u64 = 512;
const MIB: u64 = 1024 * 1024;

/// A 16 MiB "image" with ESP, root-a, root-b and data, like the builder writes.
pub(crate) fn image(image_bytes: u64) -> Vec<u8> {
    let mut device = Cursor::new(vec![0u8; image_bytes as usize]);
    ProtectiveMBR::with_lb_size((image_bytes / LBA - 1) as u32)
        .overwrite_lba0(&mut device)
        .expect("mbr");
    let mut disk = GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(device, None)
        .expect("create");
    for (name, size) in [
        ("ESP", 2 * MIB),
        ("root-a", 4 * MIB),
        ("root-b", 4 * MIB),
        ("data", 2 * MIB),
    ] {
        disk.add_partition(name, size, partition_types::LINUX_FS, 0, Some(2048))
            .expect("add");
    }
    disk.write().expect("write").into_inner()
}

fn header_at(disk: &[u8], lba: u64) -> Header {
    let start = (lba * LBA) as usize;
    parse_header(disk.get(start..start + LBA as usize).expect("sector")).expect("header")
}

fn entries_of(disk: &[u8], header: &Header) -> Vec<u8> {
    let start = (header.entries_lba * LBA) as usize;
    disk.get(start..start + header.entries_bytes() as usize)
        .expect("entries")
        .to_vec()
}

fn apply(disk: &mut [u8], plan: &GrowPlan) {
    for write in &plan.writes {
        let start = write.offset as usize;
        disk.get_mut(start..start + write.bytes.len())
            .expect("in disk")
            .copy_from_slice(&write.bytes);
    }
}

fn grown(image_bytes: u64, disk_bytes: u64) -> (Vec<u8>, GrowPlan) {
    grow(image(image_bytes), disk_bytes)
}

fn grow(mut disk: Vec<u8>, disk_bytes: u64) -> (Vec<u8>, GrowPlan) {
    disk.resize(disk_bytes as usize, 0);
    let primary = header_at(&disk, 1);
    let entries = entries_of(&disk, &primary);
    let plan = plan_grow(&disk[..512], &primary, &entries, LBA, disk_bytes / LBA, 4)
        .expect("plan")
        .expect("something to do");
    apply(&mut disk, &plan);
    (disk, plan)
}

#[test]
fn reads_what_the_gpt_crate_wrote() {
    let disk = image(16 * MIB);
    let primary = header_at(&disk, 1);
    assert_eq!(primary.my_lba, 1);
    assert_eq!(primary.alternate_lba, 16 * MIB / LBA - 1);
    assert_eq!(primary.entry_size, 128);
    let entries = parse_entries(&primary, &entries_of(&disk, &primary)).expect("entries");
    assert_eq!(
        entries.iter().map(|e| e.number).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let theirs = GptConfig::new()
        .open_from_device(Cursor::new(disk))
        .expect("open");
    for entry in &entries {
        let partition = theirs.partitions().get(&entry.number).expect("partition");
        assert_eq!(
            entry.unique_guid,
            partition.part_guid.hyphenated().to_string()
        );
        assert_eq!(entry.first_lba, partition.first_lba);
        assert_eq!(entry.last_lba, partition.last_lba);
    }
}

#[test]
fn grows_the_last_partition_to_the_end_of_a_bigger_disk() {
    let disk_bytes = 64 * MIB;
    let (disk, plan) = grown(16 * MIB, disk_bytes);
    let last_lba = disk_bytes / LBA - 1;
    // Backup header in the last LBA, 32 LBAs of entries before it, partition end aligned.
    assert_eq!(plan.new_last_lba, 63 * MIB / LBA - 1);
    assert!(plan.new_last_lba <= last_lba - 33);
    assert!(plan.new_last_lba > plan.old_last_lba);

    // The gpt crate finds the backup at the disk's end and both headers valid.
    let mut theirs = GptConfig::new()
        .only_valid_headers(true)
        .open_from_device(Cursor::new(disk.clone()))
        .expect("both headers valid");
    let primary = theirs.primary_header().expect("primary").clone();
    let backup = theirs.backup_header().expect("backup").clone();
    assert_eq!(primary.backup_lba, last_lba);
    assert_eq!(backup.current_lba, last_lba);
    assert_eq!(backup.backup_lba, 1);
    assert_eq!(primary.last_usable, last_lba - 33);
    assert_eq!(backup.part_start, last_lba - 32);
    assert_eq!(
        theirs.partitions().get(&4).expect("data").last_lba,
        plan.new_last_lba
    );

    // Both entry arrays carry the new end and a valid checksum.
    let ours_primary = header_at(&disk, 1);
    let ours_backup = header_at(&disk, last_lba);
    let a =
        parse_entries(&ours_primary, &entries_of(&disk, &ours_primary)).expect("primary entries");
    let b = parse_entries(&ours_backup, &entries_of(&disk, &ours_backup)).expect("backup entries");
    assert_eq!(a, b);
    assert_eq!(
        a.iter().find(|e| e.number == 4).map(|e| e.last_lba),
        Some(plan.new_last_lba)
    );

    // The old backup header (end of the image) is gone.
    let old_backup = (16 * MIB - LBA) as usize;
    assert!(disk[old_backup..old_backup + 8].iter().all(|&b| b == 0));

    // The protective MBR now covers the whole disk.
    let mut mbr = [0u8; 512];
    let device = theirs.device_mut();
    device.seek(SeekFrom::Start(0)).expect("seek");
    device.read_exact(&mut mbr).expect("read");
    assert_eq!(
        u32::from_le_bytes(mbr[446 + 12..446 + 16].try_into().expect("4")),
        (last_lba) as u32
    );
}

#[test]
fn the_other_partitions_are_untouched() {
    let before = image(16 * MIB);
    let (after, _) = grow(before.clone(), 32 * MIB);
    let old = parse_entries(
        &header_at(&before, 1),
        &entries_of(&before, &header_at(&before, 1)),
    )
    .expect("old");
    let new = parse_entries(
        &header_at(&after, 1),
        &entries_of(&after, &header_at(&after, 1)),
    )
    .expect("new");
    assert_eq!(old[..3], new[..3]);
    assert_eq!(old[3].first_lba, new[3].first_lba);
    assert_eq!(old[3].unique_guid, new[3].unique_guid);
}

#[test]
fn growing_twice_does_nothing_the_second_time() {
    let (disk, _) = grown(16 * MIB, 32 * MIB);
    let primary = header_at(&disk, 1);
    let entries = entries_of(&disk, &primary);
    assert_eq!(
        plan_grow(&disk[..512], &primary, &entries, LBA, 32 * MIB / LBA, 4),
        Ok(None)
    );
}

#[test]
fn a_disk_the_size_of_the_image_only_keeps_the_aligned_end() {
    let disk = image(16 * MIB);
    let primary = header_at(&disk, 1);
    let entries = entries_of(&disk, &primary);
    let plan = plan_grow(&disk[..512], &primary, &entries, LBA, 16 * MIB / LBA, 4).expect("plan");
    // The gpt crate left room after data; the aligned end is 15 MiB.
    if let Some(plan) = plan {
        assert_eq!(plan.new_last_lba, 15 * MIB / LBA - 1);
        assert!(
            plan.writes
                .iter()
                .all(|w| w.what != "old backup GPT header")
        );
    }
}

#[test]
fn refuses_a_partition_that_is_not_last() {
    let mut disk = image(16 * MIB);
    disk.resize((32 * MIB) as usize, 0);
    let primary = header_at(&disk, 1);
    let entries = entries_of(&disk, &primary);
    assert_eq!(
        plan_grow(&disk[..512], &primary, &entries, LBA, 32 * MIB / LBA, 3),
        Err(GptError::NotLast(3))
    );
    assert_eq!(
        plan_grow(&disk[..512], &primary, &entries, LBA, 32 * MIB / LBA, 9),
        Err(GptError::NoSuchPartition(9))
    );
}

#[test]
fn refuses_a_disk_smaller_than_the_table() {
    let disk = image(16 * MIB);
    let primary = header_at(&disk, 1);
    let entries = entries_of(&disk, &primary);
    let result = plan_grow(&disk[..512], &primary, &entries, LBA, 8 * MIB / LBA, 4);
    assert!(matches!(result, Err(GptError::DiskTooSmall { .. })));
}

#[test]
fn damaged_tables_are_refused() {
    let disk = image(16 * MIB);
    let mut sector = disk[512..1024].to_vec();
    sector[60] ^= 1;
    assert_eq!(parse_header(&sector), Err(GptError::HeaderChecksum));
    sector[0] = b'X';
    assert_eq!(parse_header(&sector), Err(GptError::NoSignature));

    let primary = header_at(&disk, 1);
    let mut entries = entries_of(&disk, &primary);
    entries[200] ^= 1;
    assert_eq!(
        parse_entries(&primary, &entries),
        Err(GptError::EntriesChecksum)
    );
    assert!(parse_entries(&primary, &entries[..100]).is_err());
}

#[test]
fn guid_bytes_are_mixed_endian() {
    let bytes = [
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    assert_eq!(
        guid_string(&bytes, 0),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
}

#[test]
fn hybrid_or_missing_mbrs_are_left_alone() {
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
    let huge = protective_mbr_for(&mbr, u64::from(u32::MAX) * 4).expect("patched");
    assert_eq!(&huge[446 + 12..446 + 16], &u32::MAX.to_le_bytes());
}
