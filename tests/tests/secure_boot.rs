//! Secure Boot with the owner's keys, in QEMU: `carapace keygen --secure-boot` makes the keys,
//! `carapace build --secure-boot-keys` signs systemd-boot and slot A's unified kernel image
//! and enrolls the keys into a copy of OVMF's variable store, and OVMF's Secure Boot build
//! (SMM, secure flash) boots it. An image whose UKI changed by one byte in its command line,
//! its initramfs or its kernel is refused by the firmware before any of it runs.
//!
//! /data: with a TPM (swtpm) the first boot makes it LUKS2 with its key sealed against the
//! Secure Boot state; it opens on that TPM only, and stays locked (saying why) on another TPM
//! or with Secure Boot off. Without one it is plain and the box says so.
//!
//! And updates: a Secure Boot box with a TPM (the default recipe, paired with its owner,
//! following a test repository; /data encrypted) installs an update whose bundle carries each
//! slot's signed UKI, boots it under Secure Boot, opens /data with the same sealed key and
//! commits it; a bundle whose UKIs are signed with another Secure Boot key is refused before
//! anything is written.
//!
//! The first four tests' image is a small recipe (the logger its one service): what they test
//! lives in the boot partition, the firmware and the disk helper, which every recipe's image
//! shares, and a small root builds and boots in a fraction of the default image's time.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/update_lab.rs"]
mod update_lab;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use carapace_image::build::{BuildOptions, build_with};
use carapace_image::bundle::BundleOptions;
use carapace_image::layout::{DATA_NAME, DiskPlan, ESP_NAME};
use carapace_image::qemu::{Vm, VmConfig};
use carapace_image::secure_boot::{ENROLLED_VARS, generate};
use carapace_image::uki;
use common::{
    BOOT_TIMEOUT, assert_changed_uki_is_refused, esp_file_offset, esp_has_file, fail, machine_on,
    power_off, put_esp_file, put_reset_file, qemu_io, read_byte, test_board, to_raw,
    uki_tamper_offset, workspace,
};
use update_lab::{
    Lab, SWITCH_TIMEOUT, WAIT, boot_and_pair_with, boot_kind, build_first_image_with,
    bundle_and_publish_with, console_line, publish_signed_by, recipe,
};

const RECIPE_NAME: &str = "x86-64-secure-boot-test";

const RECIPE: &str = include_str!("../recipes/x86-64-secure-boot-test.toml");

struct SignedImage {
    image: PathBuf,
    /// The build's slot A UKI, as signed (out/<name>/slot/carapace-a.efi; on the ESP it is
    /// a/carapace.efi).
    uki: PathBuf,
    enrolled_vars: PathBuf,
    /// Holds the keys and the recipe for the test binary's life.
    _dir: tempfile::TempDir,
}

/// Keys made by the CLI's own function, and the recipe built with them, once per test binary.
fn signed_image() -> &'static SignedImage {
    static IMAGE: OnceLock<SignedImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        generate(&keys, "Carapace test").expect("carapace keygen --secure-boot");
        let recipe = common::write_release_variant(dir.path(), RECIPE_NAME, RECIPE);
        let ws = common::workspace();
        let options = BuildOptions {
            secure_boot_keys: Some(keys),
            ..BuildOptions::default()
        };
        let out = build_with(&recipe, &ws, options)
            .unwrap_or_else(|e| panic!("building the signed image failed: {e}"));
        let out_dir = out.image.parent().expect("out dir").to_owned();
        SignedImage {
            uki: out_dir
                .join("slot")
                .join(board_support::uki::bundle_name(board_support::Slot::A)),
            enrolled_vars: out_dir.join(ENROLLED_VARS),
            image: out.image,
            _dir: dir,
        }
    })
}

fn secure_machine(name: &str) -> (tempfile::TempDir, VmConfig) {
    let signed = signed_image();
    let (dir, mut config) = machine_on(test_board(), &signed.image, name);
    config
        .secure_boot(&signed.enrolled_vars)
        .expect("the x86-64 machine has Secure Boot firmware");
    (dir, config)
}

#[test]
fn a_signed_image_boots_under_secure_boot_in_lockdown() {
    let (_dir, config) = secure_machine("sb-boot");
    let mut vm = Vm::start(&config).expect("start QEMU");
    let trust = line_with_timeout(&mut vm, "carapace-disk: trust ");
    assert_eq!(
        trust, "carapace-disk: trust secure-boot=on lockdown=integrity",
        "the firmware did not verify this boot, or the kernel is not locked down"
    );
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    // No TPM in this machine: /data is plain, and the box says so.
    if let Err(e) = vm.wait_for(NO_TPM_LINE, 0, Duration::ZERO) {
        fail(&vm, e);
    }
    // The loader entry names only the UKI: the command line is the signed one.
    let cmdline_in_uki = uki_section(".cmdline").1;
    assert!(
        String::from_utf8_lossy(&cmdline_in_uki).contains("carapace.verity="),
        "the UKI's command line does not pin the root"
    );
    power_off(&mut vm);
    // The control for the encrypted box's test below: on a plain /data the log is readable.
    assert!(
        data_partition_holds(&_dir.path().join("disk.qcow2"), LOGGED_TEXT),
        "the plain /data's log does not hold {LOGGED_TEXT:?}"
    );
}

/// The same signed image on the firmware without Secure Boot still boots (a signature does
/// not stop a machine that checks none), and says that nothing verified it.
#[test]
fn without_secure_boot_the_box_says_so() {
    let signed = signed_image();
    let (_dir, config) = machine_on(test_board(), &signed.image, "sb-off");
    let mut vm = Vm::start(&config).expect("start QEMU");
    let trust = line_with_timeout(&mut vm, "carapace-disk: trust ");
    assert_eq!(
        trust,
        "carapace-disk: trust secure-boot=off lockdown=integrity"
    );
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    power_off(&mut vm);
}

/// One byte changed in the UKI's command line (the verity root hash), its initramfs or its
/// kernel: systemd-boot's LoadImage of it fails with the firmware's Access Denied, and
/// nothing of the kernel runs.
#[test]
fn a_uki_changed_by_one_byte_is_refused() {
    for (section, at) in [
        (".cmdline", "the verity root hash"),
        (".initrd", "the initramfs"),
        (".linux", "the kernel"),
    ] {
        let (dir, config) = secure_machine("sb-tamper");
        let uki = std::fs::read(&signed_image().uki).expect("the signed UKI");
        let offset = uki_offset_in_image() + uki_tamper_offset(&uki, section) as u64;
        let byte = read_byte(&signed_image().image, offset);
        qemu_io(
            &dir.path().join("disk.qcow2"),
            &format!("write -P {} {offset} 1", byte ^ 0x01),
        );

        assert_changed_uki_is_refused(&config, at, BOOT_TIMEOUT);
        eprintln!("secure boot: a UKI with {at} changed by one byte is refused");
    }
}

#[test]
fn a_secure_boot_box_with_encrypted_data_updates_and_refuses_a_bundle_signed_with_another_key() {
    let lab = Lab::new("sb-update");
    let (net, site, keys, build_dir) = (&lab.net, &lab.site, &lab.keys, lab.dir());
    let chat = lab.fakes.chat();
    let secure_boot_keys = build_dir.join("secure-boot-keys");
    generate(&secure_boot_keys, "Carapace test").expect("Secure Boot keys");
    // Two releases of one recipe, as a vendor makes them: the partitions' ids derive from the
    // recipe's name, and each UKI's signed command line names its slot's.
    let release = |version: &str| {
        let dir = build_dir.join(version);
        std::fs::create_dir_all(&dir).expect("release dir");
        recipe(&dir, "sb-update", version, &net.ca_pem, keys, false, "")
    };
    let (recipe_a, recipe_b) = (release("0.1.0"), release("0.1.1"));
    let signed = BuildOptions {
        secure_boot_keys: Some(secure_boot_keys.clone()),
        ..BuildOptions::default()
    };
    let (built, code) = build_first_image_with(build_dir, &recipe_a, signed);
    // Kept aside: building 0.1.1 replaces out/sb-update/.
    let image = build_dir.join("first.img");
    let enrolled_vars = build_dir.join(ENROLLED_VARS);
    let copied = Command::new("cp")
        .arg("--sparse=always")
        .arg(&built)
        .arg(&image)
        .status()
        .expect("cp");
    assert!(copied.success(), "copy the first image");
    std::fs::copy(built.with_file_name(ENROLLED_VARS), &enrolled_vars).expect("copy vars");
    bundle_and_publish_with(
        &recipe_b,
        keys,
        &site.join("x86-64"),
        BundleOptions {
            key: keys.signing.clone(),
            min_from: None,
            build: true,
            locked: false,
            patch_from: Vec::new(),
            secure_boot_keys: Some(secure_boot_keys),
        },
    );
    let (machine, config, mut vm) = boot_and_pair_with(
        &image,
        "sb-update",
        net,
        &chat,
        &code,
        Some(&enrolled_vars),
        true,
    );
    let on = "carapace-disk: trust secure-boot=on lockdown=integrity";
    console_line(&mut vm, 0, on, BOOT_TIMEOUT);
    // The owner sees what verified the boot, and that /data is sealed to this box's TPM.
    chat.send("/status");
    let (_, status) = chat.wait_for(
        &vm,
        0,
        "secure boot: on, kernel lockdown: integrity, TPM: yes",
        WAIT,
    );
    assert!(
        status.contains("/data: encrypted (LUKS2); its key is sealed to this box's TPM"),
        "{status}"
    );

    chat.send("/update");
    let (seen, _) = chat.wait_for(&vm, 0, "0.1.1 is available", WAIT);
    chat.send("/update install");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.1 is written to slot b", WAIT);
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let ready = console_line(
        &mut vm,
        before_reboot,
        "carapace: ready slot=b",
        SWITCH_TIMEOUT,
    );
    let console = vm.console();
    assert!(
        console[before_reboot..ready].iter().any(|l| l == on),
        "slot b did not boot under Secure Boot:\n{}",
        console[before_reboot..ready].join("\n")
    );
    // The update did not need /data's key again: slot b's boot unsealed it (PCR 7 is the same:
    // the same firmware keys verified a UKI signed with the same db key).
    let unlocked = "carapace-disk: data unlocked: the TPM unsealed its key";
    assert!(
        console[before_reboot..ready]
            .iter()
            .any(|l| l.starts_with(unlocked)),
        "slot b's boot did not open the encrypted /data:\n{}",
        console[before_reboot..ready].join("\n")
    );
    let (kind, trial) = boot_kind(&mut vm, before_reboot, WAIT);
    assert!(
        trial,
        "slot b's first boot is a trial: {}",
        vm.console()[kind]
    );
    console_line(
        &mut vm,
        ready,
        "updated: update: committed slot=b version=0.1.1",
        WAIT,
    );
    let (seen, _) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot b)", WAIT);

    // The same release with its UKIs signed by a key this box's firmware does not hold.
    let other_keys = build_dir.join("other-secure-boot-keys");
    generate(&other_keys, "Someone else").expect("other Secure Boot keys");
    let built_b = workspace().join("out/sb-update");
    publish_signed_by(&built_b, "0.1.2", &other_keys, keys, &site.join("x86-64"));
    chat.send("/update install");
    let (_, refused) = chat.wait_for(&vm, seen + 1, "Installing 0.1.2 failed:", WAIT);
    assert!(
        refused.contains("not signed with a key in this box's Secure Boot db"),
        "{refused}"
    );
    assert!(
        refused.contains("The running slot b is untouched"),
        "{refused}"
    );

    // The owner keeps /data's recovery key, which the first boot handed to agentd...
    chat.send("/recovery_key");
    let (_, shown) = chat.wait_for(&vm, 0, "/data's recovery key: ", WAIT);
    let key = shown
        .split("/data's recovery key: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the key")
        .trim()
        .to_owned();
    assert_eq!(key.len(), 29, "{shown}");
    power_off(&mut vm);
    drop(vm);

    // ... and it opens /data once the Secure Boot state changed (here turned off), when the
    // TPM refuses: the locked box says how, the key on the ESP opens it and has a new key
    // sealed to the state of now, so the next boot needs no file, and the file is gone.
    let mut config = config;
    config.secure_boot_vars = None;
    std::fs::remove_file(&config.vars).expect("the Secure Boot variable store");
    let locked = boot_locked(&config);
    assert!(
        locked.contains("the Secure Boot state (PCR 7) differs")
            && locked.contains("put the key in a file named carapace-recovery-key.txt"),
        "{locked}"
    );
    let raw = machine.path().join("disk.raw");
    to_raw(&config.disk, &raw);
    let esp = DiskPlan::new(test_board(), 256, 1024, 64)
        .expect("plan")
        .partition(ESP_NAME)
        .clone();
    put_esp_file(
        &raw,
        esp.offset,
        esp.size,
        "carapace-recovery-key.txt",
        format!("{}\n", key.to_lowercase()).as_bytes(),
    );
    config.disk = raw.clone();
    config.disk_format = "raw";
    let mut vm = Vm::start(&config).expect("start QEMU");
    let reopened = "carapace-disk: data unlocked with the recovery key; its key is sealed again \
                    to this TPM and Secure Boot state, and carapace-recovery-key.txt is deleted \
                    from the ESP";
    console_line(&mut vm, 0, reopened, BOOT_TIMEOUT);
    console_line(&mut vm, 0, "carapace: ready slot=b", BOOT_TIMEOUT);
    let before = chat.telegram.sent().len();
    chat.send("/status");
    chat.wait_for(&vm, before, "secure boot: off", WAIT);
    power_off(&mut vm);
    drop(vm);
    assert!(
        !esp_has_file(&raw, esp.offset, esp.size, "carapace-recovery-key.txt"),
        "the recovery key was left on the ESP"
    );
    let mut vm = Vm::start(&config).expect("start QEMU");
    console_line(&mut vm, 0, "carapace: ready slot=b", BOOT_TIMEOUT);
    console_line(&mut vm, 0, unlocked, Duration::ZERO);
    power_off(&mut vm);
}

const NO_TPM_LINE: &str = "carapace-disk: format: /data is not encrypted: this box has no TPM 2.0";
/// A console line the logger keeps in /data/logger/console.log on every boot.
const LOGGED_TEXT: &[u8] = b"carapace-disk: trust secure-boot=";
const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";

/// With a TPM (swtpm, its state in the machine's folder), the first boot makes /data LUKS2
/// with its key sealed against the Secure Boot state, and the next boot on that TPM opens it;
/// the disk holds none of /data's text in the clear. The same disk with another TPM, or with
/// Secure Boot off on its own TPM, stays locked, says why, and is left as it was; the factory
/// reset then gives a fresh encrypted /data.
#[test]
fn data_is_encrypted_and_opens_only_on_its_tpm_under_secure_boot() {
    let (dir, mut config) = secure_machine("sb-tpm");
    let disk = dir.path().join("disk.qcow2");
    config.tpm(&dir.path().join("tpm"));
    let mut vm = Vm::start(&config).expect("start QEMU");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    let needle = "carapace-disk: format: /data is encrypted (LUKS2, aes-xts-plain64); its key is \
                  sealed to the TPM against the Secure Boot state (PCR 7)";
    if let Err(e) = vm.wait_for(needle, 0, Duration::ZERO) {
        fail(&vm, e);
    }
    let mounted = line_with_timeout(&mut vm, "carapace: data mounted ");
    assert!(mounted.contains(" first_boot=yes "), "{mounted}");
    power_off(&mut vm);
    assert_eq!(data_partition_head(&disk, LUKS_MAGIC.len()), LUKS_MAGIC);
    assert!(
        !data_partition_holds(&disk, LOGGED_TEXT),
        "the encrypted /data's log is readable on the disk"
    );

    // The next boot: the same TPM unseals the key.
    let mut vm = Vm::start(&config).expect("start QEMU");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    let unlocked = "carapace-disk: data unlocked: the TPM unsealed its key (Secure Boot state \
                    unchanged)";
    if let Err(e) = vm.wait_for(unlocked, 0, Duration::ZERO) {
        fail(&vm, e);
    }
    let mounted = line_with_timeout(&mut vm, "carapace: data mounted ");
    assert!(mounted.contains(" first_boot=no "), "{mounted}");
    power_off(&mut vm);
    let header = data_partition_head(&disk, 1 << 20);

    // The disk in another machine: its TPM cannot load the sealed key.
    config.tpm(&dir.path().join("other-tpm"));
    let locked = boot_locked(&config);
    assert!(
        locked.contains("this is not the TPM that sealed /data's key"),
        "{locked}"
    );
    // Its own TPM, with Secure Boot off: PCR 7 differs.
    config.tpm(&dir.path().join("tpm"));
    config.secure_boot_vars = None;
    std::fs::remove_file(&config.vars).expect("the Secure Boot variable store");
    let locked = boot_locked(&config);
    assert!(
        locked.contains("the Secure Boot state (PCR 7) differs from when /data's key was sealed"),
        "{locked}"
    );
    assert!(
        data_partition_head(&disk, 1 << 20) == header,
        "a locked boot changed /data's LUKS header"
    );

    // The way back is the factory reset: a fresh /data, encrypted again, its key sealed to the
    // Secure Boot state of now.
    let raw = dir.path().join("disk.raw");
    to_raw(&disk, &raw);
    let esp = plan().partition(ESP_NAME).clone();
    put_reset_file(&raw, esp.offset, esp.size);
    config.disk = raw;
    config.disk_format = "raw";
    let mut vm = Vm::start(&config).expect("start QEMU");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    let format = line_with_timeout(&mut vm, "carapace-disk: format start ");
    assert!(format.contains("reason=factory-reset"), "{format}");
    if let Err(e) = vm.wait_for(needle, 0, Duration::ZERO) {
        fail(&vm, e);
    }
    let mounted = line_with_timeout(&mut vm, "carapace: data mounted ");
    assert!(mounted.contains(" first_boot=yes "), "{mounted}");
    power_off(&mut vm);
}

/// Boots to the degraded line for a locked /data, powers off, and returns the line.
fn boot_locked(config: &VmConfig) -> String {
    let mut vm = Vm::start(config).expect("start QEMU");
    let line = line_with_timeout(&mut vm, "carapace: degraded data=locked held=");
    assert!(
        line.contains("/data is encrypted and its key stays sealed: "),
        "{line}"
    );
    // PID 1 opens the power button just after this line: a press before that is lost, as on a
    // real box, so press until it answers.
    let mut pressed = false;
    for _ in 0..6 {
        vm.power_button().expect("QMP power button");
        let shutdown = "carapace: shutdown reason=power-button";
        if vm.wait_for(shutdown, 0, Duration::from_secs(10)).is_ok() {
            pressed = true;
            break;
        }
    }
    if !pressed {
        fail(&vm, "the degraded box did not answer the power button");
    }
    let status = vm.wait_exit(WAIT).expect("machine powers off");
    assert!(status.success(), "QEMU exited with {status}");
    line
}

/// This recipe's disk (esp 64, root 128, data 64 MiB; data grows to the disk's end, from the
/// same start).
fn plan() -> DiskPlan {
    DiskPlan::new(test_board(), 64, 128, 64).expect("plan")
}

fn data_partition_start() -> u64 {
    plan().partition(DATA_NAME).offset
}

/// A raw copy of a machine's disk, deleted after use.
fn raw_disk(disk: &std::path::Path) -> tempfile::NamedTempFile {
    let raw = tempfile::NamedTempFile::new().expect("temp");
    to_raw(disk, raw.path());
    raw
}

fn data_partition_head(disk: &std::path::Path, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let raw = raw_disk(disk);
    let mut head = vec![0u8; len];
    raw.as_file()
        .read_exact_at(&mut head, data_partition_start())
        .expect("read the data partition");
    head
}

/// Whether `needle` is anywhere in the data partition, in the clear. Only the raw copy's data
/// extents are read (SEEK_DATA / SEEK_HOLE): most of a grown /data is holes.
fn data_partition_holds(disk: &std::path::Path, needle: &[u8]) -> bool {
    use rustix::fs::{SeekFrom, seek};
    use std::os::unix::fs::FileExt;
    let raw = raw_disk(disk);
    let file = raw.as_file();
    let mut at = data_partition_start();
    let chunk = 8 << 20;
    let mut buf = vec![0u8; chunk + needle.len()];
    loop {
        let Ok(start) = seek(file, SeekFrom::Data(at)) else {
            return false; // no data after `at`
        };
        let end = seek(file, SeekFrom::Hole(start)).expect("SEEK_HOLE");
        let mut pos = start;
        while pos < end {
            let len = ((end - pos) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..len], pos).expect("read");
            if buf[..len].windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            pos += chunk as u64;
        }
        at = end;
    }
}

fn line_with_timeout(vm: &mut Vm, needle: &str) -> String {
    match vm.wait_for(needle, 0, BOOT_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(vm, e),
    }
}

/// (offset in the UKI file, data) of one of its sections.
fn uki_section(name: &str) -> (usize, Vec<u8>) {
    let bytes = std::fs::read(&signed_image().uki).expect("the signed UKI");
    let (offset, data) = uki::section(&bytes, name).unwrap_or_else(|| panic!("no {name}"));
    (offset, data.to_vec())
}

/// Where the signed UKI starts in the image (the ESP is the first partition).
fn uki_offset_in_image() -> u64 {
    static OFFSET: OnceLock<u64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let esp = plan().partition(ESP_NAME).clone();
        let uki = std::fs::read(&signed_image().uki).expect("the signed UKI");
        esp_file_offset(
            &signed_image().image,
            esp.offset..esp.offset + esp.size,
            &uki,
        )
    })
}
