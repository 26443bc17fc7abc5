//! The generic arm64 image (recipes/arm64-qemu.toml): its binaries cross-built for aarch64,
//! Debian's arm64 kernel and systemd-boot, booted under qemu-system-aarch64's virt machine
//! with the AAVMF firmware. The first-boot checks that PID 1 and agentd print (the test image's
//! probe services are x86-64 only), on first boot and again after the power button.
//!
//! The same recipe signed for Secure Boot: AAVMF, with the build's keys enrolled, verifies
//! systemd-boot and the slot's unified kernel image (Debian's arm64 kernel, which is a PE
//! image itself, in systemd's aarch64 stub), and refuses a UKI changed by one byte.

mod common;

use std::time::Duration;

use board_support::board::ARM64;
use carapace_image::build::{BuildOptions, build_with};
use carapace_image::layout::{DiskPlan, ESP_NAME};
use carapace_image::qemu::{Vm, VmConfig};
use carapace_image::secure_boot::{ENROLLED_VARS, generate};
use common::*;

const RECIPE: &str = "recipes/arm64-qemu.toml";
/// Emulating another instruction set costs more than x86-64 on x86-64: give it longer.
const ARM64_BOOT_TIMEOUT: Duration = Duration::from_secs(600);

fn boot(config: &VmConfig) -> Vm {
    let mut vm = Vm::start(config).expect("start qemu-system-aarch64");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, ARM64_BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    vm
}

#[test]
fn the_arm64_image_boots_from_a_verity_root_makes_data_and_powers_off_cleanly() {
    let ws = workspace();
    let image = carapace_image::build::build(&ws.join(RECIPE), &ws)
        .unwrap_or_else(|e| panic!("building {RECIPE} failed: {e}"))
        .image;
    let (_dir, config) = machine_on(&ARM64, &image, "arm64");

    let mut vm = boot(&config);
    line_with(&mut vm, "carapace: stage1 switch_root");
    line_with(&mut vm, "carapace: stage2 start slot=a");
    let verity = line_with(&mut vm, "carapace: stage1 verity root=");
    assert!(value(&verity, "root").starts_with("/dev/dm-"), "{verity}");
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let size: u64 = value(&data, "size_mib").parse().expect("size_mib");
    assert!(size > 1500, "/data was not grown to fill the disk: {data}");
    let creds = line_with(&mut vm, "carapace: service agentd creds");
    assert_eq!(value(&creds, "uid"), "1000", "{creds}");
    assert_eq!(value(&creds, "cap_eff"), "0000000000000000", "{creds}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    let key = value(&identity, "ed25519").to_string();
    power_off(&mut vm);
    drop(vm);

    let mut vm = boot(&config);
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "no", "{data}");
    assert_eq!(value(&data, "clean"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert_eq!(identity, format!("agentd: identity ed25519={key} loaded"));
    power_off(&mut vm);
}

/// Keys from `carapace keygen --secure-boot`'s own function, the arm64 recipe built with them;
/// the signed image boots under AAVMF's Secure Boot in lockdown, and a copy whose UKI changed by
/// one byte in its command line (the verity root hash), initramfs or kernel is refused by the
/// firmware before any of it runs.
#[test]
fn a_signed_arm64_image_boots_under_secure_boot_and_one_changed_by_a_byte_does_not() {
    let ws = workspace();
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    generate(&keys, "Carapace arm64 test").expect("carapace keygen --secure-boot");
    let name = "arm64-secure-boot-test";
    let text = std::fs::read_to_string(ws.join(RECIPE))
        .expect("the arm64 recipe")
        .replace("name = \"arm64-qemu\"", &format!("name = \"{name}\""));
    let recipe = write_variant(dir.path(), "arm64-qemu", name, &text);
    let options = BuildOptions {
        secure_boot_keys: Some(keys),
        ..BuildOptions::default()
    };
    let image = build_with(&recipe, &ws, options)
        .unwrap_or_else(|e| panic!("building the signed arm64 image failed: {e}"))
        .image;
    let out = image.parent().expect("out dir");
    let enrolled_vars = out.join(ENROLLED_VARS);
    let secure_machine = |name: &str| {
        let (dir, mut config) = machine_on(&ARM64, &image, name);
        config
            .secure_boot(&enrolled_vars)
            .expect("AAVMF's Secure Boot");
        (dir, config)
    };

    let (_machine, config) = secure_machine("arm64-sb");
    let mut vm = Vm::start(&config).expect("start qemu-system-aarch64");
    let trust = match vm.wait_for("carapace-disk: trust ", 0, ARM64_BOOT_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(&vm, e),
    };
    assert_eq!(
        trust, "carapace-disk: trust secure-boot=on lockdown=integrity",
        "the firmware did not verify this boot, or the kernel is not locked down"
    );
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, ARM64_BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    power_off(&mut vm);
    drop(vm);

    let uki_file = out
        .join("slot")
        .join(board_support::uki::bundle_name(board_support::Slot::A));
    let uki = std::fs::read(&uki_file).expect("the signed UKI");
    let esp = DiskPlan::new(&ARM64, 256, 1024, 64)
        .expect("the recipe's disk plan")
        .partition(ESP_NAME)
        .clone();
    let uki_at = esp_file_offset(&image, esp.offset..esp.offset + esp.size, &uki);
    for (section, what) in [
        (".cmdline", "the verity root hash"),
        (".initrd", "the initramfs"),
        (".linux", "the kernel"),
    ] {
        let (machine, config) = secure_machine("arm64-sb-tamper");
        let offset = uki_at + uki_tamper_offset(&uki, section) as u64;
        let byte = read_byte(&image, offset);
        qemu_io(
            &machine.path().join("disk.qcow2"),
            &format!("write -P {} {offset} 1", byte ^ 0x01),
        );
        assert_changed_uki_is_refused(&config, what, ARM64_BOOT_TIMEOUT);
        eprintln!("arm64 secure boot: a UKI with {what} changed by one byte is refused");
    }
}
