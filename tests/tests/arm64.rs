//! The generic arm64 image (recipes/arm64-qemu.toml): its binaries cross-built for aarch64,
//! Debian's arm64 kernel and systemd-boot, booted under qemu-system-aarch64's virt machine
//! with the AAVMF firmware. The first-boot checks that PID 1 and agentd print (the test image's
//! probe services are x86-64 only), on first boot and again after the power button.

mod common;

use std::time::Duration;

use board_support::board::ARM64;
use carapace_image::qemu::{Vm, VmConfig};
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
