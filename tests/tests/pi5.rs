//! The Raspberry Pi 5 image (recipes/pi5.toml), checked for what the Pi's EEPROM firmware
//! needs (raspberrypi/documentation: boot.adoc, autoboot.adoc; rpi-eeprom issue 585 for the
//! GPT): its partition table, p1 with autoboot.txt and no config.txt, slot A's boot partition
//! (config.txt, cmdline.txt, an arm64 kernel, the initramfs, both bcm2712 device trees), slot
//! B's empty one, and the root's Pi drivers and Wi-Fi firmware. Then the same image boots
//! under QEMU's virt machine, through the stand-in that reads the disk as the firmware does;
//! and a Pi image with the update service takes an update over the air the Pi's way: the trial
//! is a kexec into slot B's boot partition, a panicking release goes back through the firmware.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/update_lab.rs"]
mod update_lab;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use board_support::board::PI5;
use board_support::boot_control::Autoboot;
use board_support::cmdline::BootParams;
use board_support::gpt;
use carapace_image::fat_partition;
use carapace_image::qemu::{Vm, VmConfig};
use common::*;
use net::TestNet;
use update_lab::{
    Breakage, Lab, WAIT, boot_kind, build_first_image, bundle_and_publish, console_line, pi_recipe,
    publish_broken,
};

const RECIPE: &str = "recipes/pi5.toml";
/// Another instruction set under TCG: as long as the arm64 test gives it.
const PI5_BOOT_TIMEOUT: Duration = Duration::from_secs(600);

fn built_image() -> PathBuf {
    let ws = workspace();
    carapace_image::build::build(&ws.join(RECIPE), &ws)
        .unwrap_or_else(|e| panic!("building {RECIPE} failed: {e}"))
        .image
}

/// Every file in the root of FAT partition `number`, with its bytes.
fn fat_files(image: &Path, number: u32) -> Vec<(String, Vec<u8>)> {
    let disk = File::open(image).unwrap();
    let length = disk.metadata().unwrap().len();
    let fs = fat_partition::open(&disk, length, number)
        .unwrap_or_else(|e| panic!("partition {number}: {e}"));
    let mut files = Vec::new();
    for entry in fs.root_dir().iter().map(|e| e.unwrap()) {
        assert!(
            !entry.is_dir() || entry.file_name() == "." || entry.file_name() == "..",
            "partition {number} has a folder {}",
            entry.file_name()
        );
        let mut bytes = Vec::new();
        entry.to_file().read_to_end(&mut bytes).unwrap();
        files.push((entry.file_name(), bytes));
    }
    files.sort();
    files
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_slice())
        .unwrap_or_else(|| panic!("no {name} among {names:?}"))
}

#[test]
fn the_pi5_image_has_the_layout_and_boot_files_the_firmware_reads() {
    let image = built_image();
    let disk = File::open(&image).unwrap();
    let length = disk.metadata().unwrap().len();
    let table = gpt::read_table(&disk, 512, length / 512).expect("GPT");
    assert!(!table.from_backup, "the primary GPT is damaged");
    // The EEPROM finds the entries only at LBA 2, and Windows moves them unless the first
    // usable LBA is 34 (rpi-eeprom issue 585).
    assert_eq!(table.header.entries_lba, 2);
    assert_eq!(table.header.first_usable, 34);
    let mut entries = table.entries.clone();
    entries.sort_by_key(|e| e.number);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["config", "boot-a", "boot-b", "root-a", "root-b", "data"]
    );
    let basic_data = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";
    for fat in &entries[..3] {
        assert_eq!(fat.type_guid.to_string(), basic_data, "{}", fat.name);
    }
    assert_eq!(entries[0].first_lba, 2048, "p1 starts at 1 MiB");
    let partuuid = |i: usize| entries[i].unique_guid.to_string();

    // p1: autoboot.txt only. A config.txt would make it bootable itself.
    let config = fat_files(&image, 1);
    let names: Vec<&str> = config.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["autoboot.txt"]);
    let autoboot_bytes = file(&config, "autoboot.txt");
    assert!(autoboot_bytes.len() <= 512, "the firmware reads 512 bytes");
    let autoboot = Autoboot::parse(autoboot_bytes, Path::new("autoboot.txt")).unwrap();
    assert_eq!(
        autoboot,
        Autoboot {
            boot_partition: 2,
            tryboot_partition: 2
        }
    );
    let text = String::from_utf8(autoboot_bytes.to_vec()).unwrap();
    assert!(text.lines().any(|l| l == "tryboot_a_b=1"), "{text}");

    // p2: slot A, as config.txt tells the firmware to boot it.
    let boot_a = fat_files(&image, 2);
    let config_txt = String::from_utf8(file(&boot_a, "config.txt").to_vec()).unwrap();
    let settings: Vec<&str> = config_txt
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for wanted in [
        "arm_64bit=1",
        "kernel=vmlinuz",
        "initramfs initrd followkernel",
        "enable_uart=1",
        "dtparam=watchdog=on",
    ] {
        assert!(
            settings.contains(&wanted),
            "config.txt lacks {wanted}: {config_txt}"
        );
    }
    // An arm64 Linux Image: "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst); the
    // firmware loads it uncompressed.
    let kernel = file(&boot_a, "vmlinuz");
    assert_eq!(&kernel[0x38..0x3c], b"ARM\x64", "vmlinuz is no arm64 Image");
    let initrd = file(&boot_a, "initrd");
    assert_eq!(
        &initrd[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "initrd is no zstd cpio"
    );
    for (dtb, compatible) in [
        ("bcm2712-rpi-5-b.dtb", "raspberrypi,5-model-b"),
        ("bcm2712-d-rpi-5-b.dtb", "raspberrypi,5-model-b"),
    ] {
        let bytes = file(&boot_a, dtb);
        assert_eq!(
            &bytes[..4],
            &[0xd0, 0x0d, 0xfe, 0xed],
            "{dtb} is no device tree"
        );
        let found = bytes
            .windows(compatible.len())
            .any(|w| w == compatible.as_bytes());
        assert!(found, "{dtb} is not for {compatible}");
    }
    let cmdline = String::from_utf8(file(&boot_a, "cmdline.txt").to_vec()).unwrap();
    assert_eq!(
        cmdline.lines().count(),
        1,
        "cmdline.txt is one line: {cmdline:?}"
    );
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    assert!(words.contains(&"console=ttyAMA10,115200"), "{cmdline}");
    let params = BootParams::parse(&cmdline).expect("the boot contract's words");
    assert_eq!(params.slot, board_support::Slot::A);
    assert_eq!(params.esp_partuuid, partuuid(0), "carapace.esp= names p1");
    assert_eq!(
        params.root_partuuid,
        partuuid(3),
        "carapace.root= names root-a"
    );
    assert_eq!(
        params.data_partuuid,
        partuuid(5),
        "carapace.data= names data"
    );

    // p3: slot B's, formatted and empty until an update: the firmware never boots it.
    assert_eq!(fat_files(&image, 3), Vec::<(String, Vec<u8>)>::new());
}

#[test]
fn the_pi5_image_boots_under_qemu_virt_as_the_firmware_would_boot_it() {
    let image = built_image();
    let (dir, config) = machine_on(&PI5, &image, "pi5");
    let direct = config
        .direct_kernel
        .clone()
        .expect("the Pi firmware stand-in");
    assert_eq!(
        direct.boot_partition, 2,
        "autoboot.txt's [all] names boot-a"
    );
    assert!(direct.kernel.starts_with(dir.path()));
    let mut vm = Vm::start(&config).expect("start qemu-system-aarch64");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, PI5_BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    let start = line_with(&mut vm, "carapace: stage1 start");
    assert!(value(&start, "kernel").ends_with("-arm64"), "{start}");
    let verity = line_with(&mut vm, "carapace: stage1 verity root=");
    assert!(value(&verity, "root").starts_with("/dev/dm-"), "{verity}");
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let size: u64 = value(&data, "size_mib").parse().expect("size_mib");
    assert!(size > 1000, "/data was not grown to fill the disk: {data}");
    let creds = line_with(&mut vm, "carapace: service agentd creds");
    assert_eq!(value(&creds, "cap_eff"), "0000000000000000", "{creds}");
    // The power button is virt's gpio-keys here, as it is the Pi's: found by KEY_POWER.
    power_off(&mut vm);
}

/// The firmware stand-in on a raw copy of the disk, as the Pi's firmware would start it after
/// a reset: it reads autoboot.txt and the slot's boot partition as they are now.
fn pi_after_reset(image: &Path, disk: &Path, dir: &Path, net: &TestNet) -> (VmConfig, Vm) {
    let mut config =
        VmConfig::for_image(&PI5, image, disk.to_owned(), dir).expect("the Pi firmware stand-in");
    config.network = net.network();
    config.echo = std::env::var_os("CARAPACE_TEST_ECHO").is_some();
    let vm = Vm::start(&config).expect("start qemu-system-aarch64");
    (config, vm)
}

#[test]
fn a_pi_update_is_tried_by_kexec_and_a_panicking_release_goes_back_through_the_firmware() {
    let lab = Lab::new("pi5-update");
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let chat = lab.fakes.chat();
    let recipe_a = pi_recipe(build_dir, "pi5-update-a", "0.1.0", &net.ca_pem, keys);
    let recipe_b = pi_recipe(build_dir, "pi5-update-b", "0.1.1", &net.ca_pem, keys);
    let (image, code) = build_first_image(build_dir, &recipe_a);
    bundle_and_publish(&recipe_b, keys, &site.join("pi5"));

    // A raw disk, so the stand-in sees what the box writes to its partitions (a sparse copy
    // with room for /data to grow).
    let machine = tempfile::tempdir().expect("machine dir");
    let disk = machine.path().join("disk.img");
    let copied = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&image)
        .arg(&disk)
        .status()
        .expect("cp");
    assert!(copied.success(), "copying the image failed");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .and_then(|f| f.set_len(4 << 30))
        .expect("grow the disk");

    let (config, mut vm) = pi_after_reset(&image, &disk, machine.path(), net);
    assert_eq!(config.direct_kernel.as_ref().unwrap().boot_partition, 2);
    console_line(&mut vm, 0, "carapace: ready slot=a", PI5_BOOT_TIMEOUT);
    chat.send(&format!("/start {code}"));
    chat.wait_for(&vm, 0, "Paired: you are this box's owner", WAIT);
    let (kind, trial) = boot_kind(&mut vm, 0, WAIT);
    assert!(
        !trial,
        "the first boot is not a trial: {}",
        vm.console()[kind]
    );

    // 0.1.1 into slot B's partitions; /update reboot kexecs into it: no firmware runs, so the
    // same machine goes on with slot B's kernel, initramfs and cmdline.txt.
    chat.send("/update install");
    let (seen, written) = chat.wait_for(&vm, 0, "0.1.1 is written to slot b", WAIT);
    assert!(written.contains("/update reboot"), "{written}");
    let before = vm.console().len();
    chat.send("/update reboot");
    let kexec = console_line(
        &mut vm,
        before,
        "carapace: shutdown reason=service-request action=reboot-kexec",
        WAIT,
    );
    let loaded = console_line(&mut vm, kexec, "carapace-disk: kexec trial loaded:", WAIT);
    assert!(
        vm.console()[loaded].contains("/run/carapace/boot-b/vmlinuz"),
        "{}",
        vm.console()[loaded]
    );
    let at = console_line(&mut vm, loaded, "carapace: ready slot=b", PI5_BOOT_TIMEOUT);
    let (kind, trial) = boot_kind(&mut vm, loaded, WAIT);
    assert!(
        trial,
        "slot b's kexec boot is a trial: {}",
        vm.console()[kind]
    );
    console_line(
        &mut vm,
        at,
        "updated: update: committed slot=b version=0.1.1",
        WAIT,
    );
    let (seen, committed) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot b)", WAIT);
    assert!(committed.contains("chat link is back"), "{committed}");

    // Committed: autoboot.txt's [all] names boot-b, so the firmware boots slot B from now on.
    power_off(&mut vm);
    let (config, mut vm) = pi_after_reset(&image, &disk, machine.path(), net);
    assert_eq!(config.direct_kernel.as_ref().unwrap().boot_partition, 3);
    console_line(&mut vm, 0, "carapace: ready slot=b", PI5_BOOT_TIMEOUT);
    let (kind, trial) = boot_kind(&mut vm, 0, WAIT);
    assert!(!trial, "slot b is committed: {}", vm.console()[kind]);

    // 0.1.2's kernel panics (no init in its initramfs). Its one trial boot ends in a reset,
    // which goes through the firmware, and the firmware boots [all]: slot B, 0.1.1.
    publish_broken(
        &workspace().join("out/pi5-update-b"),
        "0.1.2",
        Breakage::KernelPanic,
        keys,
        &site.join("pi5"),
    );
    chat.send("/update install");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.2 is written to slot a", WAIT);
    let before = vm.console().len();
    chat.send("/update reboot");
    console_line(&mut vm, before, "carapace-disk: kexec trial loaded:", WAIT);
    let panic = vm
        .wait_for_containing("Kernel panic", before, PI5_BOOT_TIMEOUT)
        .unwrap_or_else(|e| fail(&vm, e));
    assert!(panic.1.contains("Kernel panic"), "{}", panic.1);
    // panic=10 resets the machine; with -no-reboot that ends QEMU, as the firmware takes over.
    vm.wait_exit(Duration::from_secs(120))
        .unwrap_or_else(|e| fail(&vm, e));
    let (config, mut vm) = pi_after_reset(&image, &disk, machine.path(), net);
    assert_eq!(config.direct_kernel.as_ref().unwrap().boot_partition, 3);
    console_line(&mut vm, 0, "carapace: ready slot=b", PI5_BOOT_TIMEOUT);
    let (_, told) = chat.wait_for(&vm, seen, "0.1.2 did not start properly", WAIT);
    assert!(told.contains("back on 0.1.1 (slot b)"), "{told}");
    power_off(&mut vm);
}
