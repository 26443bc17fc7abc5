//! The Pi 5 update cycle against the simulated firmware: which partition boots, when the
//! one-shot flag clears, and what each step writes.

use std::fs;

use super::firmware::{Disk, Files, SLOT_A_PARTITION, SLOT_B_PARTITION, kernel_args};
use super::{
    CMDLINE_FILE, PiBootPartition, PiTrialStart, PiTryboot, TRYBOOT_REBOOT_ARGUMENT, TrialReboot,
};
use crate::boot_control::BootControl;
use crate::error::Error;
use crate::slot::Slot;

fn autoboot(all: u32, tryboot: u32) -> String {
    format!("[all]\ntryboot_a_b=1\nboot_partition={all}\n[tryboot]\nboot_partition={tryboot}\n")
}

/// What the update service does on the running system: retire the other slot, write its boot
/// files, install it as a trial. Returns the slot it wrote.
fn install_update(disk: &Disk, control: &mut PiTryboot) -> Slot {
    let target = control.current_slot().unwrap().other();
    control.retire(target).unwrap();
    disk.write_slot_files(target, Files::Whole);
    control
        .install_trial(target, "0.3.0", &kernel_args(target))
        .unwrap();
    target
}

/// An orderly reboot that carries what boot control says it must, then the boot.
fn reboot(disk: &mut Disk, control: &PiTryboot) -> PiTryboot {
    disk.reboot(control.trial_reboot().unwrap());
    disk.start().1
}

#[test]
fn the_simulated_firmware_follows_the_documented_example() {
    let mut disk = Disk::flashed();
    disk.write_slot_files(Slot::B, Files::Whole);
    fs::write(
        disk.slot_dir(Slot::B).join(CMDLINE_FILE),
        kernel_args(Slot::B),
    )
    .unwrap();
    // autoboot.adoc's "Initial autoboot.txt".
    disk.write_autoboot(&autoboot(2, 3));
    assert_eq!(disk.boot().partition, 2);
    disk.reboot(Some(TrialReboot::Tryboot("0 tryboot")));
    let boot = disk.boot();
    assert_eq!(
        (boot.partition, boot.slot, boot.tryboot),
        (3, Slot::B, true)
    );
    assert!(!disk.tryboot_flag(), "the flag is used up by the boot");
    disk.reset();
    assert_eq!(disk.boot().partition, 2, "a reset after the trial");
    // The kernel's notifier wants " tryboot" after the partition number.
    disk.reboot(Some(TrialReboot::Tryboot("tryboot")));
    assert_eq!(disk.boot().partition, 2);
    disk.reboot(Some(TrialReboot::Tryboot("0")));
    assert_eq!(disk.boot().partition, 2);
    disk.reboot(Some(TrialReboot::Tryboot("0 tryboot")));
    disk.power_cut();
    assert_eq!(
        disk.boot().partition,
        2,
        "the flag does not survive losing power"
    );
}

#[test]
fn a_fresh_disk_boots_slot_a_with_no_trial() {
    let mut disk = Disk::flashed();
    let (boot, control) = disk.start();
    assert_eq!((boot.partition, boot.slot), (SLOT_A_PARTITION, Slot::A));
    assert_eq!(control.current_slot().unwrap(), Slot::A);
    assert!(!control.is_trial().unwrap());
    assert_eq!(control.trial_reboot().unwrap(), None);
}

#[test]
fn an_installed_trial_boots_once_through_tryboot_and_stays_once_committed() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    assert_eq!(install_update(&disk, &mut control), Slot::B);
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_A_PARTITION, SLOT_B_PARTITION)
    );
    assert_eq!(
        fs::read_to_string(disk.slot_dir(Slot::B).join(CMDLINE_FILE)).unwrap(),
        format!("{}\n", kernel_args(Slot::B))
    );
    assert_eq!(
        control.trial_reboot().unwrap(),
        Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT))
    );
    disk.reboot(control.trial_reboot().unwrap());
    assert!(disk.tryboot_flag());

    let (boot, mut control) = disk.start();
    assert_eq!((boot.slot, boot.tryboot), (Slot::B, true));
    assert!(!disk.tryboot_flag(), "the trial boot cleared the flag");
    assert!(control.is_trial().unwrap());
    control.commit().unwrap();
    assert!(!control.is_trial().unwrap());

    for _ in 0..3 {
        control = reboot(&mut disk, &control);
        assert_eq!(control.current_slot().unwrap(), Slot::B);
        assert!(!control.is_trial().unwrap());
        disk.reset();
        let (boot, _) = disk.start();
        assert_eq!((boot.slot, boot.tryboot), (Slot::B, false));
    }
}

#[test]
fn a_commit_writes_exactly_this_autoboot_txt() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    control.commit().unwrap();
    assert_eq!(
        disk.autoboot(),
        "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=3\n"
    );
    assert_eq!(
        disk.autoboot_files(),
        ["autoboot.txt"],
        "no temporary file left"
    );
    // A second commit in the same boot has nothing left to do.
    control.commit().unwrap();
    assert_eq!(disk.autoboot(), autoboot(3, 3));
}

#[test]
fn a_trial_that_crashes_goes_back_to_the_old_slot_by_itself() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let control = reboot(&mut disk, &control);
    assert!(control.is_trial().unwrap());
    let before = disk.autoboot();
    // The trial hangs, the watchdog resets the box: no commit, no argument.
    disk.reset();
    let (boot, control) = disk.start();
    assert_eq!((boot.slot, boot.tryboot), (Slot::A, false));
    assert!(!control.is_trial().unwrap());
    assert_eq!(disk.autoboot(), before, "the firmware writes nothing");
    disk.reset();
    assert_eq!(disk.boot().slot, Slot::A, "and stays there");
}

#[test]
fn a_power_cut_during_the_trial_goes_back_to_the_old_slot() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::B);
    disk.power_cut();
    let (boot, control) = disk.start();
    assert_eq!(boot.slot, Slot::A);
    assert!(!control.is_trial().unwrap());
}

#[test]
fn a_rolled_back_trial_boots_the_old_slot_next_whatever_the_reboot() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    control.rollback().unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_A_PARTITION, SLOT_A_PARTITION)
    );
    assert_eq!(control.trial_reboot().unwrap(), None);
    let control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::A);
    assert!(!control.is_trial().unwrap());
    // Even a stray tryboot no longer reaches the bad slot.
    disk.reboot(Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT)));
    assert_eq!(disk.boot().slot, Slot::A);
}

#[test]
fn rollback_needs_the_other_slot_installed() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    let before = disk.autoboot();
    let err = control.rollback().unwrap_err();
    assert!(matches!(err, Error::NoEntry { slot: Slot::B, .. }), "{err}");
    assert_eq!(disk.autoboot(), before);
    assert_eq!(disk.boot().slot, Slot::A);
}

#[test]
fn an_installed_trial_waits_for_a_tryboot_reboot() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    // The power goes before the update service's reboot: the flag was never set.
    disk.power_cut();
    let (boot, control) = disk.start();
    assert_eq!(boot.slot, Slot::A);
    assert!(!control.is_trial().unwrap());
    // A plain reboot does not try it either; the argument still does.
    disk.reboot(None);
    assert_eq!(disk.boot().slot, Slot::A);
    let control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::B);
    assert!(control.is_trial().unwrap());
}

#[test]
fn commit_outside_a_trial_changes_nothing() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    control.commit().unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_A_PARTITION, SLOT_B_PARTITION)
    );
    assert_eq!(
        control.trial_reboot().unwrap(),
        Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT)),
        "the waiting trial is kept"
    );
}

#[test]
fn arm_trial_keeps_an_orderly_reboot_in_the_trial_but_not_a_reset() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    control.arm_trial(Slot::B).unwrap();
    let control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::B);
    assert!(control.is_trial().unwrap());
    disk.reset();
    let (boot, _) = disk.start();
    assert_eq!(boot.slot, Slot::A, "the firmware has no tries to give back");
}

#[test]
fn arm_trial_of_the_other_slot_needs_it_installed_and_points_tryboot_at_it() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    let err = control.arm_trial(Slot::B).unwrap_err();
    assert!(matches!(err, Error::NoEntry { slot: Slot::B, .. }), "{err}");
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    control.rollback().unwrap();
    let mut control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::A);
    // B is still installed: arming it tries it again.
    control.arm_trial(Slot::B).unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_A_PARTITION, SLOT_B_PARTITION)
    );
    let control = reboot(&mut disk, &control);
    assert_eq!(control.current_slot().unwrap(), Slot::B);
}

#[test]
fn a_power_cut_between_retire_and_install_leaves_the_booted_slot_booting() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    control.commit().unwrap();
    // B runs committed; the next update rewrites A, whose partition the old [tryboot] named.
    control.retire(Slot::A).unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_B_PARTITION, SLOT_B_PARTITION)
    );
    assert!(!disk.slot_dir(Slot::A).join(CMDLINE_FILE).exists());
    assert_eq!(control.trial_reboot().unwrap(), None);
    disk.write_slot_files(Slot::A, Files::Half);
    disk.power_cut();
    let (boot, control) = disk.start();
    assert_eq!(boot.slot, Slot::B);
    assert!(!control.is_trial().unwrap());
    // Not even a tryboot reaches the half-written slot, and nothing can arm it.
    disk.reboot(Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT)));
    let (boot, mut control) = disk.start();
    assert_eq!(boot.slot, Slot::B);
    let err = control.arm_trial(Slot::A).unwrap_err();
    assert!(matches!(err, Error::NoEntry { slot: Slot::A, .. }), "{err}");
}

#[test]
fn retire_during_a_trial_makes_the_booted_slot_the_fallback() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let mut control = reboot(&mut disk, &control);
    assert!(control.is_trial().unwrap());
    control.retire(Slot::A).unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_B_PARTITION, SLOT_B_PARTITION)
    );
    disk.write_slot_files(Slot::A, Files::Half);
    disk.reset();
    assert_eq!(disk.boot().slot, Slot::B);
}

#[test]
fn the_booted_slot_is_never_retired_or_installed() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    let before = disk.autoboot();
    let err = control.retire(Slot::A).unwrap_err();
    assert!(
        matches!(err, Error::BootedSlot { slot: Slot::A, .. }),
        "{err}"
    );
    let err = control
        .install_trial(Slot::A, "0.3.0", &kernel_args(Slot::A))
        .unwrap_err();
    assert!(
        matches!(err, Error::BootedSlot { slot: Slot::A, .. }),
        "{err}"
    );
    assert_eq!(disk.autoboot(), before);
    assert!(disk.slot_dir(Slot::A).join(CMDLINE_FILE).exists());
    assert_eq!(disk.boot().slot, Slot::A);
}

#[test]
fn install_trial_refuses_text_that_would_break_cmdline_txt() {
    let mut disk = Disk::flashed();
    let (_, mut control) = disk.start();
    control.retire(Slot::B).unwrap();
    disk.write_slot_files(Slot::B, Files::Whole);
    let before = disk.autoboot();
    for args in ["", "quiet\ninit=/bin/sh", "quiet\r"] {
        let err = control.install_trial(Slot::B, "0.3.0", args).unwrap_err();
        assert!(matches!(err, Error::BadEntryValue { .. }), "{err}");
    }
    assert_eq!(disk.autoboot(), before);
    assert!(!disk.slot_dir(Slot::B).join(CMDLINE_FILE).exists());
}

#[test]
fn a_garbled_autoboot_txt_is_refused_naming_the_file_and_nothing_is_written() {
    let disk = Disk::flashed();
    let path = disk.partition_dir(1).join("autoboot.txt");
    let cases = [
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=\u{0}\n",
        "[all]\ntryboot_a_b=1\nboot_partition=2\n",
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=5\n",
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\nos_prefix=b/\n",
        "",
    ];
    for text in cases {
        disk.write_autoboot(text);
        let mut control = disk.control(Slot::A);
        let err = control.is_trial().unwrap_err();
        assert!(
            matches!(
                err,
                Error::AutobootLine { .. }
                    | Error::AutobootSetting { .. }
                    | Error::AutobootPartition { .. }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        for result in [
            control.commit(),
            control.rollback(),
            control.retire(Slot::B),
            control.install_trial(Slot::B, "0.3.0", &kernel_args(Slot::B)),
            control.trial_reboot().map(|_| ()),
        ] {
            assert!(result.is_err());
        }
        assert_eq!(
            disk.autoboot(),
            text,
            "a file boot control cannot read is left alone"
        );
        assert!(!disk.slot_dir(Slot::B).join(CMDLINE_FILE).exists());
    }
}

#[test]
fn a_missing_autoboot_txt_is_an_io_error_naming_it() {
    let disk = Disk::flashed();
    fs::remove_file(disk.partition_dir(1).join("autoboot.txt")).unwrap();
    let err = disk.control(Slot::A).is_trial().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("autoboot.txt"), "{err}");
}

#[test]
fn the_slots_need_two_partitions_other_than_0_and_1() {
    let dir = tempfile::tempdir().unwrap();
    let partition = |number| PiBootPartition {
        number,
        dir: dir.path().join(format!("p{number}")),
    };
    for (a, b) in [(2, 2), (1, 3), (2, 0)] {
        let err = PiTryboot::new(
            dir.path(),
            partition(a),
            partition(b),
            Slot::A,
            PiTrialStart::FirmwareFlag,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::PiBootPartitions { slot_a, slot_b } if (slot_a, slot_b) == (a, b)),
            "{err}"
        );
    }
    assert!(
        PiTryboot::new(
            dir.path(),
            partition(5),
            partition(6),
            Slot::B,
            PiTrialStart::Kexec
        )
        .is_ok()
    );
}

// The fallback for a kernel without the tryboot notifier (Debian's): the same cycle, with the
// trial's one boot reached by kexec instead of the firmware's flag.

#[test]
fn with_kexec_an_installed_trial_is_started_from_its_own_boot_files() {
    let mut disk = Disk::flashed_for(PiTrialStart::Kexec);
    let (_, mut control) = disk.start();
    assert_eq!(control.trial_reboot().unwrap(), None);
    assert_eq!(install_update(&disk, &mut control), Slot::B);
    let dir = disk.slot_dir(Slot::B);
    assert_eq!(
        control.trial_reboot().unwrap(),
        Some(TrialReboot::Kexec {
            kernel: dir.join("kernel_2712.img"),
            initrd: dir.join("initrd"),
            cmdline: kernel_args(Slot::B),
        })
    );
    // The kernel without the notifier ignores a tryboot argument: no flag, slot a again.
    disk.reboot(Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT)));
    assert!(!disk.tryboot_flag());
    assert_eq!(disk.boot().slot, Slot::A);
}

#[test]
fn with_kexec_a_trial_boots_once_and_stays_once_committed() {
    let mut disk = Disk::flashed_for(PiTrialStart::Kexec);
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    let autoboot_before = disk.autoboot();
    disk.reboot(control.trial_reboot().unwrap());
    let (boot, mut control) = disk.start();
    assert_eq!(
        (boot.partition, boot.slot, boot.kexec),
        (SLOT_B_PARTITION, Slot::B, true)
    );
    assert_eq!(disk.autoboot(), autoboot_before, "a kexec writes nothing");
    assert!(control.is_trial().unwrap());
    control.commit().unwrap();
    assert_eq!(
        disk.autoboot(),
        autoboot(SLOT_B_PARTITION, SLOT_B_PARTITION)
    );
    assert_eq!(control.trial_reboot().unwrap(), None);
    disk.reboot(control.trial_reboot().unwrap());
    let boot = disk.boot();
    assert_eq!(
        (boot.slot, boot.kexec),
        (Slot::B, false),
        "the firmware boots it now"
    );
}

#[test]
fn with_kexec_a_reset_or_power_cut_in_the_trial_goes_back_to_the_old_slot() {
    for cut in [false, true] {
        let mut disk = Disk::flashed_for(PiTrialStart::Kexec);
        let (_, mut control) = disk.start();
        install_update(&disk, &mut control);
        disk.reboot(control.trial_reboot().unwrap());
        let (boot, control) = disk.start();
        assert_eq!(boot.slot, Slot::B);
        assert!(control.is_trial().unwrap());
        if cut {
            disk.power_cut();
        } else {
            disk.reset();
        }
        let (boot, control) = disk.start();
        assert_eq!((boot.slot, boot.kexec), (Slot::A, false), "cut={cut}");
        assert!(!control.is_trial().unwrap());
    }
}

#[test]
fn with_kexec_a_rolled_back_trial_boots_the_old_slot_whatever_the_reboot() {
    let mut disk = Disk::flashed_for(PiTrialStart::Kexec);
    let (_, mut control) = disk.start();
    install_update(&disk, &mut control);
    disk.reboot(control.trial_reboot().unwrap());
    let (_, mut control) = disk.start();
    control.rollback().unwrap();
    assert_eq!(control.trial_reboot().unwrap(), None, "nothing to kexec");
    disk.reboot(control.trial_reboot().unwrap());
    assert_eq!(disk.boot().slot, Slot::A);
}

#[test]
fn with_kexec_a_config_txt_that_names_no_kernel_is_an_error_naming_it() {
    let disk = Disk::flashed_for(PiTrialStart::Kexec);
    let mut control = disk.control(Slot::A);
    install_update(&disk, &mut control);
    let config = disk.slot_dir(Slot::B).join("config.txt");
    fs::write(&config, "arm_64bit=1\n").unwrap();
    let err = control.trial_reboot().unwrap_err();
    assert!(
        matches!(&err, Error::PiConfigTxt { path } if *path == config),
        "{err}"
    );
}
