//! The Raspberry Pi 5 image (recipes/pi5.toml), checked for what the Pi's EEPROM firmware
//! needs (raspberrypi/documentation: boot.adoc, autoboot.adoc; rpi-eeprom issue 585 for the
//! GPT): its partition table, p1 with autoboot.txt and no config.txt, slot A's boot partition
//! (config.txt, cmdline.txt, an arm64 kernel, the initramfs, both bcm2712 device trees), slot
//! B's empty one, and the root's Pi drivers and Wi-Fi firmware. Then the same image boots
//! under QEMU's virt machine, through the stand-in that reads the disk as the firmware does;
//! and a Pi image with the update service takes an update over the air the Pi's way: the trial
//! is a kexec into slot B's boot partition, a panicking release goes back through the firmware.
//! A Pi image built with `--secure-boot-keys` (a small recipe: what it tests is the boot
//! partition) has slot A's files in a boot.img signed as the EEPROM's signed boot verifies it,
//! checked here with openssl against db.crt; its update service and bundles are refused.

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
use carapace_image::build::{BuildOptions, build_with, source_date_epoch};
use carapace_image::bundle::{BundleOptions, bundle};
use carapace_image::fat_partition;
use carapace_image::pi_signed_boot::{self, BOOT_IMAGE, BOOT_SIGNATURE};
use carapace_image::qemu::{Vm, VmConfig};
use carapace_image::secure_boot::generate;
use carapace_update::Sha256Digest;
use common::*;
use net::TestNet;
use update_lab::{
    Breakage, Lab, WAIT, boot_kind, build_first_image, bundle_and_publish, console_line, make_keys,
    pi_recipe, publish_broken,
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

/// A Pi 5 recipe whose one service is the logger: enough for a root, quick to build.
const SIGNED_RECIPE: &str = r#"name = "pi5-signed-test"
board = "pi5"
hostname = "carapace-pi-sb"

[debian]
suite = "trixie"
packages = [
    "e2fsprogs", "libc6", "libext2fs2t64", "libcom-err2", "libblkid1", "libuuid1",
    "nftables", "libnftables1", "libnftnl11", "libmnl0", "libjansson4", "libgmp10",
    "libxtables12", "libedit2", "libbsd0", "libmd0", "libtinfo6",
]
programs = ["/usr/sbin/mke2fs", "/usr/sbin/e2fsck", "/usr/sbin/resize2fs", "/usr/sbin/nft"]

[kernel]
root_modules = [
    "bcm2835_wdt", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "gpio_keys", "evdev",
    "nf_tables", "nf_conntrack", "nft_ct",
]

[disk]
esp_mib = 64
root_mib = 128
data_mib = 64

[[service]]
name = "logger"
exec = ["/usr/bin/carapace-logger", "--reader", "1001"]
uid = 1001
gid = 1001
memory_max = 16777216
pids_max = 8
capabilities = ["CAP_SYSLOG"]
ready = true
state_dir = true
runtime_dir = true
"#;

/// Runs openssl in `dir`; its output.
fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl")
}

/// Checks `signature` (boot.sig's text) for `image` as the firmware does: the digest line is
/// boot.img's SHA-256 and the rsa2048 line verifies with db.crt's public key (`pub.pem` in
/// `dir`). The same check of `image` with one byte changed must fail verification.
fn check_boot_sig(dir: &Path, image: &[u8], signature: &[u8]) {
    let text = String::from_utf8(signature.to_vec()).expect("boot.sig is text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "boot.sig: {text}");
    assert_eq!(
        lines[0],
        Sha256Digest::of(image).to_hex(),
        "boot.sig's first line is not boot.img's SHA-256"
    );
    assert_eq!(lines[1], format!("ts: {}", source_date_epoch()), "{text}");
    let rsa = lines[2].strip_prefix("rsa2048: ").expect("an rsa2048 line");
    let rsa: Vec<u8> = (0..rsa.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&rsa[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(rsa.len(), 256, "an RSA 2048 signature");
    std::fs::write(dir.join("sig.bin"), &rsa).unwrap();
    std::fs::write(dir.join("boot.img"), image).unwrap();
    let verify = [
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig.bin",
    ];
    let good = openssl(dir, &[&verify[..], &["boot.img"]].concat());
    assert!(
        good.status.success(),
        "boot.sig does not verify with db.crt: {}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    let mut changed = image.to_vec();
    // Inside the kernel's bytes, far from the FAT's headers.
    let at = changed.len() / 2;
    changed[at] = changed[at].wrapping_add(1);
    std::fs::write(dir.join("changed.img"), &changed).unwrap();
    let bad = openssl(dir, &[&verify[..], &["changed.img"]].concat());
    assert!(
        !bad.status.success(),
        "a boot.img changed by one byte verified"
    );
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(said.contains("Verification failure"), "{said}");
}

/// The boot parameters of the cmdline.txt inside a boot.img.
fn signed_cmdline(image: &[u8]) -> (String, BootParams) {
    let bytes = pi_signed_boot::read_file(image, "cmdline.txt").expect("cmdline.txt in boot.img");
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    let params = BootParams::parse(&text).expect("the boot contract's words");
    (text, params)
}

#[test]
fn a_signed_pi5_image_boots_a_boot_img_that_only_its_key_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    generate(&keys, "Carapace test").expect("carapace keygen --secure-boot");
    let recipe = common::write_variant(dir.path(), "pi5", "pi5-signed-test", SIGNED_RECIPE);
    let options = BuildOptions {
        secure_boot_keys: Some(keys.clone()),
        ..BuildOptions::default()
    };
    let out = build_with(&recipe, &workspace(), options)
        .unwrap_or_else(|e| panic!("building the signed Pi image failed: {e}"));
    let image = out.image;
    let public = openssl(
        dir.path(),
        &[
            "x509",
            "-noout",
            "-pubkey",
            "-in",
            keys.join("db.crt").to_str().unwrap(),
        ],
    );
    assert!(public.status.success(), "openssl x509 -pubkey");
    std::fs::write(dir.path().join("pub.pem"), &public.stdout).unwrap();

    let disk = File::open(&image).unwrap();
    let length = disk.metadata().unwrap().len();
    let mut entries = gpt::read_table(&disk, 512, length / 512)
        .expect("GPT")
        .entries;
    entries.sort_by_key(|e| e.number);
    let partuuid = |i: usize| entries[i].unique_guid.to_string();
    let slot = carapace_image::slot_files::SlotFiles::read(image.parent().unwrap())
        .expect("slot.json")
        .expect("the build's slot files");
    let root_hash = slot.info.verity.root_hash.to_hex();

    // p1 as unsigned: autoboot.txt still picks the slot's partition (tryboot A/B).
    let config = fat_files(&image, 1);
    let autoboot = Autoboot::parse(file(&config, "autoboot.txt"), Path::new("autoboot.txt"));
    assert_eq!(
        autoboot.unwrap(),
        Autoboot {
            boot_partition: 2,
            tryboot_partition: 2
        }
    );

    // p2: the ramdisk, its signature, the setting that boots it, and the installed mark.
    let boot_a = fat_files(&image, 2);
    let names: Vec<&str> = boot_a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [BOOT_IMAGE, BOOT_SIGNATURE, "cmdline.txt", "config.txt"],
        "no kernel, initramfs or device tree outside boot.img"
    );
    let outer = String::from_utf8(file(&boot_a, "config.txt").to_vec()).unwrap();
    let settings: Vec<&str> = outer
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(settings, ["boot_ramdisk=1"], "{outer}");
    let boot_img = file(&boot_a, BOOT_IMAGE);
    check_boot_sig(dir.path(), boot_img, file(&boot_a, BOOT_SIGNATURE));

    // Inside boot.img: what the unsigned partition holds, read back from its FAT.
    let inside =
        |name: &str| pi_signed_boot::read_file(boot_img, name).unwrap_or_else(|e| panic!("{e}"));
    let (cmdline, params) = signed_cmdline(boot_img);
    assert_eq!(params.slot, board_support::Slot::A);
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
    assert_eq!(
        params.verity.root_hash, root_hash,
        "the signed command line pins the root's verity hash"
    );
    assert_eq!(
        file(&boot_a, "cmdline.txt"),
        cmdline.as_bytes(),
        "the installed mark outside is the signed line"
    );
    let inner_config = String::from_utf8(inside("config.txt")).unwrap();
    assert_eq!(
        board_support::boot_control::pi_config::boot_files(&inner_config),
        Some(("vmlinuz".into(), "initrd".into())),
        "{inner_config}"
    );
    let kernel = inside("vmlinuz");
    assert_eq!(&kernel[0x38..0x3c], b"ARM\x64", "vmlinuz is no arm64 Image");
    let initrd = inside("initrd");
    assert_eq!(
        &initrd[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "initrd is no zstd cpio"
    );
    let dtb = inside("bcm2712-rpi-5-b.dtb");
    assert_eq!(&dtb[..4], &[0xd0, 0x0d, 0xfe, 0xed], "no device tree");
    assert_eq!(fat_files(&image, 3), Vec::<(String, Vec<u8>)>::new());

    // Slot B's pair waits in the slot files, signed with slot B's own root.
    let slot_file = |name: &str| std::fs::read(slot.dir.join(name)).expect(name);
    let [img_b, sig_b] = pi_signed_boot::slot_file_names(board_support::Slot::B);
    let boot_img_b = slot_file(&img_b);
    check_boot_sig(dir.path(), &boot_img_b, &slot_file(&sig_b));
    let (_, params_b) = signed_cmdline(&boot_img_b);
    assert_eq!(params_b.slot, board_support::Slot::B);
    assert_eq!(
        params_b.root_partuuid,
        partuuid(4),
        "carapace.root= names root-b"
    );
    assert_eq!(params_b.verity, params.verity);

    // The QEMU stand-in boots what the firmware would: the files inside boot.img.
    let machine = tempfile::tempdir().unwrap();
    let direct = carapace_image::pi_stand_in::boot_files(&image, machine.path(), false)
        .expect("the stand-in reads a signed partition");
    assert_eq!(direct.boot_partition, 2);
    assert_eq!(direct.append, cmdline.trim());
    assert!(
        std::fs::read(&direct.kernel).unwrap() == kernel,
        "the stand-in's kernel"
    );
}

#[test]
fn a_signed_pi5_image_takes_no_update_service_and_makes_no_bundle_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    generate(&keys, "Carapace test").expect("carapace keygen --secure-boot");
    let update_keys = dir.path().join("update-keys");
    std::fs::create_dir(&update_keys).unwrap();
    let update_keys = make_keys(&update_keys);
    // No build gets as far as the CA file: any text will do.
    let no_ca = "not used\n";
    let recipe = pi_recipe(
        dir.path(),
        "pi5-signed-updates",
        "0.1.0",
        no_ca,
        &update_keys,
    );
    let options = BuildOptions {
        secure_boot_keys: Some(keys.clone()),
        ..BuildOptions::default()
    };
    let err = match build_with(&recipe, &workspace(), options) {
        Ok(out) => panic!("built {}", out.image.display()),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("service updated has boot_control")
            && err.contains("cannot update a signed Raspberry Pi 5 image yet"),
        "{err}"
    );
    let options = BundleOptions {
        key: update_keys.signing.clone(),
        min_from: None,
        build: true,
        locked: false,
        patch_from: Vec::new(),
        secure_boot_keys: Some(keys),
    };
    let err = match bundle(&recipe, &workspace(), &options) {
        Ok(report) => panic!("bundled {}", report.dir.display()),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot be updated over the air yet")
            && err.contains("does not install a slot's signed boot.img and boot.sig"),
        "{err}"
    );
}
