//! Whole-system tests: build the test image (recipes/x86-64-qemu-test.toml), boot it in QEMU
//! with OVMF and read the serial console. Each test boots its own qcow2 overlay of the image.
//! Run one at a time (`--test-threads=1`): the machines are TCG-emulated and CPU-bound.

mod common;

use std::process::Command;
use std::time::Duration;

use carapace_image::layout::{DiskPlan, ESP_NAME, ROOT_A_NAME};
use carapace_image::qemu::Vm;
use common::*;

/// First boot: stage 1 hands over to stage 2 on a read-only, verity-backed erofs root; /data
/// is made and grown; agentd is unprivileged and makes an identity; orphans are reaped; the
/// boot_control service gets the ESP and the slots' devices; the power button shuts down
/// cleanly. Second boot: /data is clean, the marker and the identity survived. Slot A was
/// never on trial: the builder wrote its entry committed, so neither boot counted it down.
#[test]
fn first_boot_reboot_and_clean_power_off() {
    let (_dir, config) = machine("boot");
    let mut vm = boot_to_ready(&config);

    line_with(&mut vm, "carapace: stage1 switch_root");
    line_with(&mut vm, "carapace: stage2 start slot=a");
    let verity = line_with(&mut vm, "carapace: stage1 verity root=");
    assert!(value(&verity, "root").starts_with("/dev/dm-"), "{verity}");

    let root = line_with(&mut vm, "rootcheck: rootcheck fs=");
    assert_eq!(value(&root, "fs"), "erofs", "{root}");
    assert_eq!(value(&root, "ro"), "yes", "{root}");
    assert!(
        value(&root, "source").starts_with("/dev/dm-"),
        "root is not on dm-verity: {root}"
    );
    let write = line_with(&mut vm, "rootcheck: rootcheck write=");
    assert_eq!(value(&write, "write"), "EROFS", "{write}");

    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let size: u64 = value(&data, "size_mib").parse().expect("size_mib");
    assert!(
        size > 1500,
        "/data was not grown to fill the 4 GiB disk: {data}"
    );

    let creds = line_with(&mut vm, "carapace: service agentd creds");
    assert_eq!(value(&creds, "uid"), "1000", "{creds}");
    assert_eq!(value(&creds, "gid"), "1000", "{creds}");
    assert_eq!(value(&creds, "cap_eff"), "0000000000000000", "{creds}");
    assert_eq!(value(&creds, "cap_prm"), "0000000000000000", "{creds}");
    assert_eq!(value(&creds, "cap_bnd"), "0000000000000000", "{creds}");

    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    let key = value(&identity, "ed25519").to_string();
    let health = line_with(&mut vm, "health: health reply=");
    assert!(
        health.contains("\"status\":\"ok\"") && health.contains(&key),
        "{health}"
    );

    line_with(&mut vm, "orphans: orphans spawned=3");
    let zombies = line_with(&mut vm, "orphans: orphans zombies=");
    assert_eq!(value(&zombies, "zombies"), "0", "{zombies}");
    // PID 1 reports the running total at most once a second: wait for all three.
    let reaped_all = |vm: &Vm| {
        vm.console()
            .iter()
            .filter_map(|l| l.strip_prefix("carapace: reaped orphans="))
            .any(|n| n.trim().parse::<u32>().is_ok_and(|n| n >= 3))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reaped_all(&vm) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        reaped_all(&vm),
        "PID 1 did not reap 3 orphans\n{}",
        vm.console().join("\n")
    );

    let marker = line_with(&mut vm, "marker: marker created=");
    let marker = value(&marker, "created").to_string();
    check_boot_control(&mut vm);
    line_with(&mut vm, "carapace: idle rss pid1_kib=");
    assert_no_trial(&vm);
    power_off(&mut vm);
    drop(vm);

    let mut vm = boot_to_ready(&config);
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "no", "{data}");
    assert_eq!(
        value(&data, "clean"),
        "yes",
        "the power button left /data unclean: {data}"
    );
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert_eq!(identity, format!("agentd: identity ed25519={key} loaded"));
    line_with(&mut vm, &format!("marker: marker found={marker}"));
    line_with(&mut vm, "carapace: idle rss pid1_kib=");
    assert_no_trial(&vm);
    power_off(&mut vm);
    drop(vm);

    // systemd-boot renames an entry it counts on every boot: after two boots the ESP still
    // holds slot A's entry as the builder wrote it, committed, generation 1.
    assert_eq!(
        esp_entries(&config.disk),
        [("carapace-a.conf".to_owned(), Some(1))]
    );
}

/// The test image's `bootcheck` service (boot_control = true, uid 1110) found what the disk
/// helper prepared for it: the ESP at /boot/efi, its own and writable; slot b's device
/// writable, slot a's (booted) readable only; the whole disk still root's.
fn check_boot_control(vm: &mut Vm) {
    let ready = line_with(vm, "carapace-disk: boot control ready");
    assert_eq!(
        ready,
        "carapace-disk: boot control ready esp=/boot/efi owner=1110:1110 booted=a:/dev/vda2 \
         inactive=b:/dev/vda3"
    );
    let esp = line_with(vm, "bootcheck: bootcheck esp");
    assert_eq!(value(&esp, "fs"), "vfat", "{esp}");
    let options: Vec<&str> = value(&esp, "options").split(',').collect();
    for option in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(options.contains(&option), "{option}: {esp}");
    }
    let fs_options: Vec<&str> = value(&esp, "super").split(',').collect();
    for option in ["uid=1110", "gid=1110", "fmask=0077", "dmask=0077"] {
        assert!(fs_options.contains(&option), "{option}: {esp}");
    }
    assert_eq!(value(&esp, "entries"), "carapace-a.conf", "{esp}");
    assert_eq!(value(&esp, "generations"), "1", "{esp}");
    assert_eq!(value(&esp, "write"), "ok", "{esp}");
    let slots = line_with(vm, "bootcheck: bootcheck slots");
    for (key, expected) in [
        ("booted", "a:/dev/vda2"),
        ("inactive", "b:/dev/vda3"),
        ("inactive_rw", "ok"),
        ("booted_read", "ok"),
        ("booted_rw", "EACCES"),
        ("disk_read", "EACCES"),
    ] {
        assert_eq!(value(&slots, key), expected, "{key}: {slots}");
    }
}

/// No trial and no commit: PID 1 commits nothing any more, and a fresh image has no trial.
/// (" trial" with its space: the test image has a service named wifitrial.)
fn assert_no_trial(vm: &Vm) {
    let console = vm.console();
    let trial = console.iter().find(|l| {
        l.starts_with("carapace: slot ")
            || (l.starts_with("carapace: ") && (l.contains("committed") || l.contains(" trial")))
    });
    assert!(trial.is_none(), "{trial:?}\n{}", console.join("\n"));
    let ready = console
        .iter()
        .find(|l| l.starts_with("carapace: ready "))
        .expect("a ready line");
    assert_eq!(value(ready, "slot"), "a", "{ready}");
}

/// The boot loader entries on the ESP of a machine's (powered-off) qcow2 disk, with each
/// one's generation: qemu-img makes a raw copy, fatfs reads its ESP.
fn esp_entries(qcow2: &std::path::Path) -> Vec<(String, Option<u64>)> {
    use std::io::{Read, Seek, SeekFrom};
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("disk.raw");
    to_raw(qcow2, &raw);
    let plan = DiskPlan::new(test_board(), 256, 1024, 64).expect("plan");
    let esp = plan.partition(ESP_NAME);
    let mut bytes = vec![0u8; esp.size as usize];
    let mut file = std::fs::File::open(&raw).expect("raw");
    file.seek(SeekFrom::Start(esp.offset)).expect("seek");
    file.read_exact(&mut bytes).expect("read the ESP");
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bytes), fatfs::FsOptions::new())
        .expect("the ESP is FAT");
    let entries = fs.root_dir().open_dir("loader/entries").expect("entries");
    let mut found = Vec::new();
    for entry in entries.iter() {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let mut body = String::new();
        entry
            .to_file()
            .read_to_string(&mut body)
            .expect("read entry");
        found.push((name, board_support::entry_generation(&body)));
    }
    found.sort();
    found
}

/// The image users run (the release recipe, without the test services) boots to ready on a
/// fresh disk, in slot A and with no trial: /data made, agentd's identity created; the power
/// button shuts it down cleanly.
#[test]
fn release_image_boots_to_ready_and_powers_off() {
    let (_dir, config) = machine_of(release_image(), "release");
    let mut vm = boot_to_ready(&config);
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    line_with(&mut vm, "carapace: idle rss pid1_kib=");
    assert_no_trial(&vm);
    let console = vm.console();
    assert!(
        !console.iter().any(|l| l.starts_with("carapace: FATAL")),
        "{}",
        console.join("\n")
    );
    power_off(&mut vm);
}

/// Where `path`'s first data block lies inside the test image's root-a, in bytes from the
/// start of the disk, from erofs-utils' dump.erofs.
fn root_file_offset(path: &str) -> u64 {
    let plan = DiskPlan::new(test_board(), 256, 1024, 64).expect("plan");
    let root_a = plan.partition(ROOT_A_NAME);
    let dir = tempfile::tempdir().expect("tempdir");
    let erofs = dir.path().join("root.erofs");
    let mut image = std::fs::File::open(test_image()).expect("image");
    let mut root = vec![0u8; 64 << 20];
    use std::io::{Read, Seek, SeekFrom};
    image.seek(SeekFrom::Start(root_a.offset)).expect("seek");
    image.read_exact(&mut root).expect("read root-a");
    std::fs::write(&erofs, &root).expect("write root.erofs");
    let out = Command::new("dump.erofs")
        .args(["-e", "--path", path])
        .arg(&erofs)
        .output()
        .expect("dump.erofs (erofs-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    // " Ext:   logical offset | length : physical offset | length" then "   0: a..b | n : c..d | m"
    let physical = text
        .lines()
        .find(|l| l.trim_start().starts_with("0:"))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|p| p.split("..").next())
        .and_then(|p| p.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no extent for {path} in dump.erofs output:\n{text}"));
    root_a.offset + physical
}

/// One byte flipped in a file that nothing opens at boot (badblocks, in the test image only
/// for this): the whole-root read in stage 1 finds it, the FATAL line names the verity
/// device and the I/O error, and the box never switches root or reports ready.
#[test]
fn tampered_root_does_not_come_up() {
    let (dir, config) = machine("tamper");
    let offset = root_file_offset("/usr/sbin/badblocks") + 100;
    let byte = read_byte(test_image(), offset);
    qemu_io(
        &dir.path().join("disk.qcow2"),
        &format!("write -P {} {offset} 1", byte ^ 0xff),
    );

    let mut vm = Vm::start(&config).expect("start QEMU");
    let fatal = match vm.wait_for("carapace: FATAL", 0, BOOT_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(&vm, format!("no FATAL line for a tampered root: {e}")),
    };
    assert!(
        fatal.starts_with("carapace: FATAL verify /dev/dm-")
            && fatal.contains("Input/output error"),
        "the FATAL line does not say the verified root failed to read: {fatal}"
    );
    let console = vm.console();
    for never in ["carapace: stage1 switch_root", "carapace: ready"] {
        assert!(
            !console.iter().any(|l| l.starts_with(never)),
            "'{never}' on a tampered root\n{}",
            console.join("\n")
        );
    }
}

/// A service that stops petting its watchdog makes PID 1 stop petting the hardware watchdog:
/// QEMU reports the i6300esb firing (its QMP WATCHDOG event, action reset) and stage 1 starts
/// a second time.
#[test]
fn watchdog_resets_when_a_service_stops_petting() {
    let (_dir, mut config) = machine("watchdog");
    config
        .fw_cfg
        .push(("carapace.test".into(), "stop-petting".into()));
    let mut vm = boot_to_ready(&config);
    let (stopped, _) = vm
        .wait_for(
            "watchdog-hook: watchdog-hook stopping",
            0,
            Duration::from_secs(60),
        )
        .expect("the hook stops petting");
    if let Err(e) = vm.wait_for(
        "carapace: service watchdog-hook watchdog missed",
        stopped,
        Duration::from_secs(60),
    ) {
        fail(&vm, format!("PID 1 did not notice: {e}"));
    }
    assert!(
        !vm.events().iter().any(|e| e == "WATCHDOG"),
        "the hardware watchdog fired while PID 1 still petted it: {:?}",
        vm.events()
    );
    let (first, _) = vm
        .wait_for("carapace: stage1 start", 0, Duration::from_secs(1))
        .expect("first boot");
    if let Err(e) = vm.wait_for(
        "carapace: stage1 start",
        first + 1,
        Duration::from_secs(120),
    ) {
        fail(&vm, format!("no reset by the watchdog: {e}"));
    }
    assert!(
        vm.events().iter().any(|e| e == "WATCHDOG"),
        "the box restarted, but not through the hardware watchdog: events {:?}",
        vm.events()
    );
}
