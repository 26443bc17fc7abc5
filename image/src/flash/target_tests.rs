use super::*;

const GIB: u64 = 1 << 30;

/// A fake /sys: sdb (a removable 8 GiB card, partition sdb1), vda (an internal disk, vda1 and
/// vda2) and dm-0 on vda2 (the host's root when the mount table says so).
struct FakeSys {
    dir: tempfile::TempDir,
}

impl FakeSys {
    fn new() -> FakeSys {
        let fake = FakeSys {
            dir: tempfile::tempdir().unwrap(),
        };
        fake.device("block/sdb", "8:16", 8 * GIB, "1", None);
        fake.device("block/sdb/sdb1", "8:17", GIB, "1", Some("1"));
        fake.device("block/vda", "254:0", 256 * GIB, "0", None);
        fake.device("block/vda/vda1", "254:1", GIB, "0", Some("1"));
        fake.device("block/vda/vda2", "254:2", 255 * GIB, "0", Some("2"));
        fake.device("virtual/block/dm-0", "253:0", 255 * GIB, "0", None);
        let root = fake.dir.path();
        std::fs::create_dir_all(root.join("devices/virtual/block/dm-0/slaves")).unwrap();
        std::os::unix::fs::symlink(
            root.join("devices/block/vda/vda2"),
            root.join("devices/virtual/block/dm-0/slaves/vda2"),
        )
        .unwrap();
        fake
    }

    fn device(&self, at: &str, devno: &str, size: u64, removable: &str, partition: Option<&str>) {
        let root = self.dir.path();
        let dir = root.join("devices").join(at);
        std::fs::create_dir_all(dir.join("holders")).unwrap();
        std::fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
        std::fs::write(dir.join("size"), format!("{}\n", size / 512)).unwrap();
        std::fs::write(dir.join("removable"), format!("{removable}\n")).unwrap();
        if let Some(number) = partition {
            std::fs::write(dir.join("partition"), format!("{number}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&dir, root.join("dev/block").join(devno)).unwrap();
    }

    fn hold(&self, at: &str, holder: &str) {
        let holders = self.dir.path().join("devices").join(at).join("holders");
        std::fs::write(holders.join(holder), "").unwrap();
    }

    fn host(&self, mountinfo: &str, swaps: Vec<(String, DevNo)>) -> Sysfs {
        Sysfs {
            dev_block: self.dir.path().join("dev/block"),
            mountinfo: mountinfo.to_string(),
            swaps,
        }
    }
}

const ROOT_ON_DM: &str = "\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/root rw
23 22 0:21 / /proc rw shared:2 - proc proc rw
";

fn target(sys: &Sysfs, path: &str, devno: DevNo) -> Target {
    Target::Disk(sys.disk(Path::new(path), devno).unwrap())
}

#[test]
fn a_removable_card_larger_than_the_image_may_be_flashed() {
    let fake = FakeSys::new();
    let sys = fake.host(ROOT_ON_DM, vec![]);
    let card = target(&sys, "/dev/sdb", (8, 16));
    let Target::Disk(disk) = &card else {
        unreachable!()
    };
    assert_eq!(disk.size, 8 * GIB);
    assert!(disk.removable && !disk.host_root && disk.in_use.is_empty());
    assert_eq!(refusal(&card, 2 * GIB, false), None);
}

#[test]
fn a_mounted_partition_is_named_and_force_does_not_override_it() {
    let fake = FakeSys::new();
    let mounts = format!("{ROOT_ON_DM}40 22 8:17 / /media/me/my\\040card rw - vfat /dev/sdb1 rw\n");
    let sys = fake.host(&mounts, vec![]);
    let card = target(&sys, "/dev/sdb", (8, 16));
    let why = refusal(&card, GIB, true).unwrap();
    assert!(
        why.starts_with("/dev/sdb is in use: /dev/sdb1 is mounted at /media/me/my card;"),
        "{why}"
    );
}

#[test]
fn swap_and_device_mapper_on_the_disk_count_as_in_use() {
    let fake = FakeSys::new();
    fake.hold("block/sdb/sdb1", "dm-3");
    let sys = fake.host(ROOT_ON_DM, vec![("/dev/sdb".into(), (8, 16))]);
    let why = refusal(&target(&sys, "/dev/sdb", (8, 16)), GIB, true).unwrap();
    assert!(
        why.contains("/dev/sdb is swap space (swapoff /dev/sdb)"),
        "{why}"
    );
    assert!(
        why.contains("/dev/sdb1 is held by /dev/dm-3 (device-mapper, LVM or RAID)"),
        "{why}"
    );
}

#[test]
fn the_disk_the_host_runs_from_is_refused_through_device_mapper_even_with_force() {
    let fake = FakeSys::new();
    let sys = fake.host(ROOT_ON_DM, vec![]);
    assert_eq!(sys.root_disks(), BTreeSet::from([(254, 0)]));
    let why = refusal(&target(&sys, "/dev/vda", (254, 0)), GIB, true).unwrap();
    assert!(
        why.starts_with("/dev/vda is the disk this computer runs from"),
        "{why}"
    );
}

#[test]
fn a_root_on_a_plain_partition_finds_its_disk() {
    let fake = FakeSys::new();
    let sys = fake.host("22 1 254:1 / / rw - ext4 /dev/vda1 rw\n", vec![]);
    assert_eq!(sys.root_disks(), BTreeSet::from([(254, 0)]));
}

#[test]
fn a_partition_is_refused_with_the_whole_disk_named() {
    let fake = FakeSys::new();
    let sys = fake.host(ROOT_ON_DM, vec![]);
    let why = refusal(&target(&sys, "/dev/sdb1", (8, 17)), GIB / 2, true).unwrap();
    assert_eq!(
        why,
        "/dev/sdb1 is partition 1 of /dev/sdb: flash the whole disk, --to /dev/sdb"
    );
}

#[test]
fn a_disk_smaller_than_the_image_says_both_sizes() {
    let fake = FakeSys::new();
    let sys = fake.host(ROOT_ON_DM, vec![]);
    let why = refusal(&target(&sys, "/dev/sdb", (8, 16)), 9 * GIB, true).unwrap();
    assert!(
        why.starts_with("/dev/sdb holds 8.0 GiB but the image is 9.0 GiB;"),
        "{why}"
    );
}

#[test]
fn a_fixed_disk_needs_force() {
    let fake = FakeSys::new();
    fake.device("block/nvme0n1", "259:0", 512 * GIB, "0", None);
    let sys = fake.host(ROOT_ON_DM, vec![]);
    let disk = target(&sys, "/dev/nvme0n1", (259, 0));
    let why = refusal(&disk, GIB, false).unwrap();
    assert!(
        why.starts_with("/dev/nvme0n1 is not a removable disk") && why.ends_with("add --force"),
        "{why}"
    );
    assert_eq!(refusal(&disk, GIB, true), None);
}

#[test]
fn an_existing_file_needs_force_and_a_new_one_does_not() {
    let file = |exists| Target::File {
        path: PathBuf::from("box.img"),
        exists,
    };
    assert_eq!(
        refusal(&file(true), GIB, false).unwrap(),
        "box.img exists; add --force to replace it, or name a new file"
    );
    assert_eq!(refusal(&file(true), GIB, true), None);
    assert_eq!(refusal(&file(false), GIB, false), None);
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human(512), "512 bytes");
    assert_eq!(human(3 * GIB + GIB / 2), "3.5 GiB");
    assert_eq!(human(1300 << 20), "1.3 GiB");
}

#[test]
fn a_missing_disk_is_never_made_as_a_file_in_dev() {
    let why = inspect(Path::new("/dev/carapace-no-such-disk")).unwrap_err();
    assert_eq!(
        why,
        "there is no disk /dev/carapace-no-such-disk: is the card or stick plugged in? (lsblk \
         lists the disks)"
    );
    assert!(!Path::new("/dev/carapace-no-such-disk").exists());
}

#[test]
fn the_candidates_are_the_removable_disks_not_in_use() {
    let fake = FakeSys::new();
    fake.device("block/sdc", "8:32", 16 * GIB, "1", None);
    let model = fake.dir.path().join("devices/block/sdc/device");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("vendor"), "SanDisk \n").unwrap();
    std::fs::write(model.join("model"), "Ultra Fit       \n").unwrap();
    let mounts = format!("{ROOT_ON_DM}40 22 8:17 / /media/card rw - vfat /dev/sdb1 rw\n");
    let sys = fake.host(&mounts, vec![]);
    // sdb is mounted, vda is the host's and fixed, dm-0 is virtual: sdc is left.
    assert_eq!(
        sys.candidates(),
        ["/dev/sdc: 16.0 GiB, SanDisk Ultra Fit, removable"]
    );
}
