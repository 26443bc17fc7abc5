//! /data is never wiped by accident and a damaged /data never makes a boot loop: the test
//! image booted in QEMU with its data partition damaged between boots (qemu-io on the qcow2
//! overlay), or QEMU killed in the middle of the first format. Each test checks the reason
//! the box gives, not only that something failed.

mod common;

use std::time::{Duration, Instant};

use carapace_image::layout::{DATA_NAME, DiskPlan, ESP_NAME};
use carapace_image::qemu::Vm;
use common::*;

/// The test recipe's disk (recipes/x86-64-qemu-test.toml: esp 256, root 1024, data 64).
fn plan() -> DiskPlan {
    DiskPlan::new(test_board(), 256, 1024, 64).expect("plan")
}

/// Byte offset of the data partition; growing it on first boot keeps its start.
fn data_offset() -> u64 {
    plan().partition(DATA_NAME).offset
}

/// The backup superblocks of a 4 KiB-block ext4 (init/disk/src/e2fsprogs.rs).
const BACKUP_SUPERBLOCKS: [u64; 7] = [32768, 98304, 163840, 229376, 294912, 819200, 884736];

/// First boot to ready; returns agentd's key after a clean power off.
fn first_boot(config: &carapace_image::qemu::VmConfig) -> String {
    let mut vm = boot_to_ready(config);
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    let key = value(&identity, "ed25519").to_string();
    power_off(&mut vm);
    key
}

fn console_has(vm: &Vm, prefix: &str) -> bool {
    vm.console().iter().any(|l| l.starts_with(prefix))
}

/// (a) The primary superblock zeroed after a clean first boot: the next boot repairs it from
/// a backup, comes up ready and agentd loads the same identity.
#[test]
fn zeroed_primary_superblock_is_repaired_and_the_identity_survives() {
    let (dir, config) = machine("superblock");
    let key = first_boot(&config);
    qemu_io(
        &dir.path().join("disk.qcow2"),
        &format!("write -z {} 1024", data_offset() + 1024),
    );

    let mut vm = boot_to_ready(&config);
    line_with(&mut vm, "carapace-disk: repair start");
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(
        value(&data, "first_boot"),
        "no",
        "repaired, not formatted: {data}"
    );
    assert_eq!(value(&data, "repaired"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert_eq!(identity, format!("agentd: identity ed25519={key} loaded"));
    assert!(
        !console_has(&vm, "carapace-disk: format start"),
        "a damaged /data was formatted"
    );
    power_off(&mut vm);
}

/// (b) QEMU killed while mke2fs runs on the first boot: the builder's mark is still on the
/// partition, so the next boot formats again and comes up ready as a first boot.
#[test]
fn power_cut_during_the_first_format_is_finished_on_the_next_boot() {
    let (_dir, config) = machine("cut-format");
    let mut vm = Vm::start(&config).expect("start QEMU");
    if let Err(e) = vm.wait_for("carapace-disk: mke2fs ", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    // mke2fs with lazy init takes well under a second here: kill at once. The mark is cleared
    // just before the `format done` line, so a kill before that line must find it again.
    vm.kill();
    assert!(
        !console_has(&vm, "carapace-disk: format done"),
        "killed after the mark was cleared; the test proves nothing\n{}",
        vm.console().join("\n")
    );
    drop(vm);

    let mut vm = boot_to_ready(&config);
    let format = line_with(&mut vm, "carapace-disk: format start");
    assert!(format.contains("reason=new"), "{format}");
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    power_off(&mut vm);
}

/// (c) /data beyond repair (its first 8 MiB and every backup superblock overwritten): the box
/// comes up degraded, says why and how to reset, holds agentd, never says ready and does not
/// reboot; the power button still shuts it down.
#[test]
fn unrepairable_data_comes_up_degraded_without_a_boot_loop() {
    let (dir, config) = machine("degraded");
    first_boot(&config);
    let disk = dir.path().join("disk.qcow2");
    let start = data_offset();
    qemu_io(&disk, &format!("write -P 0xa5 {start} 8M"));
    // Every backup inside the 4 GiB disk (the later groups lie beyond the grown partition).
    let disk_end = 4u64 << 30;
    for block in BACKUP_SUPERBLOCKS {
        let at = start + block * 4096;
        if at + 4096 <= disk_end {
            qemu_io(&disk, &format!("write -P 0xa5 {at} 4096"));
        }
    }

    let mut vm = Vm::start(&config).expect("start QEMU");
    let degraded = match vm.wait_for("carapace: degraded data=", 0, BOOT_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(&vm, e),
    };
    assert_eq!(value(&degraded, "data"), "unrepairable", "{degraded}");
    assert!(
        degraded.contains("held=logger,iwd,netd,agentd,marker"),
        "{degraded}"
    );
    assert!(degraded.contains("carapace-factory-reset"), "{degraded}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let console = vm.console();
        let stage1_starts = console
            .iter()
            .filter(|l| l.starts_with("carapace: stage1 start"))
            .count();
        assert_eq!(stage1_starts, 1, "the box rebooted\n{}", console.join("\n"));
        assert!(
            !console_has(&vm, "carapace: ready"),
            "a degraded box said ready"
        );
        assert!(
            !console_has(&vm, "carapace: FATAL"),
            "a degraded box gave up"
        );
        assert!(
            !console_has(&vm, "carapace: service agentd started"),
            "agentd was not held"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        !console_has(&vm, "carapace-disk: format start"),
        "an unmarked /data was formatted"
    );
    vm.power_button().expect("QMP power button");
    line_with(
        &mut vm,
        "carapace: shutdown reason=power-button action=poweroff",
    );
    let status = vm
        .wait_exit(Duration::from_secs(90))
        .expect("machine powers off");
    assert!(status.success(), "QEMU exited with {status}");
}

/// (d) The owner's factory reset: `carapace-factory-reset` on the ESP erases /data; the box
/// comes up as on a first boot with a new identity, and the request is deleted.
#[test]
fn factory_reset_file_on_the_esp_gives_a_fresh_data() {
    let (dir, mut config) = machine("factory-reset");
    let key = first_boot(&config);

    // qcow2 → raw, the file put on the ESP with fatfs, and the machine booted from the raw.
    let raw = dir.path().join("disk.raw");
    to_raw(&dir.path().join("disk.qcow2"), &raw);
    let esp = plan().partition(ESP_NAME).clone();
    put_reset_file(&raw, esp.offset, esp.size);
    config.disk = raw;
    config.disk_format = "raw";

    let mut vm = boot_to_ready(&config);
    let format = line_with(&mut vm, "carapace-disk: format start");
    assert!(format.contains("reason=factory-reset"), "{format}");
    line_with(&mut vm, "carapace-disk: factory reset done");
    let data = line_with(&mut vm, "carapace: data mounted");
    assert_eq!(value(&data, "first_boot"), "yes", "{data}");
    let identity = line_with(&mut vm, "agentd: identity ed25519=");
    assert!(identity.ends_with(" created"), "{identity}");
    assert_ne!(
        value(&identity, "ed25519"),
        key,
        "the old identity survived a reset"
    );
    power_off(&mut vm);
}
