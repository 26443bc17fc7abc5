//! A stand-in for a Raspberry Pi 5's disk and its EEPROM firmware, so the tests can show which
//! slot a box would really boot. It reads autoboot.txt with its own parser, written from the
//! documentation (autoboot.adoc) rather than shared with `Autoboot`, so a mistake in what
//! PiTryboot writes shows up as a wrong boot instead of agreeing with itself.

use std::fs;
use std::path::PathBuf;

use tempfile::TempDir;

use super::{PiBootPartition, PiTrialStart, PiTryboot, TrialReboot};
use crate::slot::Slot;

/// The Rugix-style layout the design names: p1 autoboot.txt only, p2 boot-a, p3 boot-b.
pub const AUTOBOOT_PARTITION: u32 = 1;
pub const SLOT_A_PARTITION: u32 = 2;
pub const SLOT_B_PARTITION: u32 = 3;

/// What the firmware did at one power-on.
#[derive(Debug, PartialEq, Eq)]
pub struct Boot {
    pub partition: u32,
    /// From the kernel command line the firmware handed over (`carapace.slot=`), which is how
    /// the booted system learns its slot.
    pub slot: Slot,
    /// The boot consumed the one-shot flag.
    pub tryboot: bool,
    /// The running system kexec'd into it; the firmware took no part.
    pub kexec: bool,
}

/// How much of a slot's boot files the update service got written.
#[derive(Clone, Copy)]
pub enum Files {
    Whole,
    /// A power cut in the middle: config.txt is there, the kernel is not whole.
    Half,
}

/// The disk's FAT partitions, each a directory, and the firmware's one-shot flag.
pub struct Disk {
    dir: TempDir,
    tryboot_flag: bool,
    /// How the kernel on this disk starts a trial.
    start: PiTrialStart,
    /// A kexec the orderly reboot goes into instead of the firmware.
    kexec: Option<TrialReboot>,
}

impl Disk {
    /// As the image builder would write it: slot A installed and committed, both sections on
    /// it (nothing to try), boot-b empty.
    pub fn flashed() -> Disk {
        Disk::flashed_for(PiTrialStart::FirmwareFlag)
    }

    /// The same, for a kernel that starts trials as `start` says.
    pub fn flashed_for(start: PiTrialStart) -> Disk {
        let disk = Disk {
            dir: tempfile::tempdir().unwrap(),
            tryboot_flag: false,
            start,
            kexec: None,
        };
        for number in [AUTOBOOT_PARTITION, SLOT_A_PARTITION, SLOT_B_PARTITION] {
            fs::create_dir(disk.partition_dir(number)).unwrap();
        }
        disk.write_autoboot(
            "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=2\n",
        );
        disk.write_slot_files(Slot::A, Files::Whole);
        fs::write(
            disk.slot_dir(Slot::A).join("cmdline.txt"),
            format!("{}\n", kernel_args(Slot::A)),
        )
        .unwrap();
        disk
    }

    pub fn partition_dir(&self, number: u32) -> PathBuf {
        self.dir.path().join(format!("p{number}"))
    }

    pub fn slot_dir(&self, slot: Slot) -> PathBuf {
        self.partition_dir(match slot {
            Slot::A => SLOT_A_PARTITION,
            Slot::B => SLOT_B_PARTITION,
        })
    }

    pub fn autoboot(&self) -> String {
        fs::read_to_string(self.partition_dir(AUTOBOOT_PARTITION).join("autoboot.txt")).unwrap()
    }

    pub fn write_autoboot(&self, text: &str) {
        fs::write(
            self.partition_dir(AUTOBOOT_PARTITION).join("autoboot.txt"),
            text,
        )
        .unwrap();
    }

    /// The file names in the autoboot partition, sorted (to see that no temporary is left).
    pub fn autoboot_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.partition_dir(AUTOBOOT_PARTITION))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The update service's part between retire and install_trial: the slot's boot files.
    pub fn write_slot_files(&self, slot: Slot, files: Files) {
        let dir = self.slot_dir(slot);
        fs::write(
            dir.join("config.txt"),
            "arm_64bit=1\nkernel=kernel_2712.img\ninitramfs initrd followkernel\n",
        )
        .unwrap();
        let kernel: &[u8] = match files {
            Files::Whole => b"whole kernel",
            Files::Half => b"half",
        };
        fs::write(dir.join("kernel_2712.img"), kernel).unwrap();
        fs::write(dir.join("initrd"), b"initramfs").unwrap();
    }

    /// Boot control as the system that booted `slot` opens it.
    pub fn control(&self, booted: Slot) -> PiTryboot {
        PiTryboot::new(
            self.partition_dir(AUTOBOOT_PARTITION),
            PiBootPartition {
                number: SLOT_A_PARTITION,
                dir: self.slot_dir(Slot::A),
            },
            PiBootPartition {
                number: SLOT_B_PARTITION,
                dir: self.slot_dir(Slot::B),
            },
            booted,
            self.start,
        )
        .unwrap()
    }

    pub fn tryboot_flag(&self) -> bool {
        self.tryboot_flag
    }

    /// An orderly reboot that does what boot control asked: with reboot(2)'s RESTART2
    /// argument the Raspberry Pi kernel's notifier sets the flag when the argument contains
    /// " tryboot" (with the space: `strstr(data, " tryboot")` in
    /// drivers/firmware/raspberrypi.c), and only that kernel has the notifier; a kexec goes
    /// straight into the loaded kernel.
    pub fn reboot(&mut self, trial: Option<TrialReboot>) {
        match trial {
            None => {}
            Some(TrialReboot::Tryboot(argument)) => {
                let partition = argument
                    .split(' ')
                    .next()
                    .and_then(|p| p.parse::<u32>().ok());
                assert!(
                    partition.unwrap_or(0) == 0,
                    "a reboot into a given partition is not simulated; Carapace never asks for one"
                );
                if argument.contains(" tryboot") && self.start == PiTrialStart::FirmwareFlag {
                    self.tryboot_flag = true;
                }
            }
            Some(kexec @ TrialReboot::Kexec { .. }) => self.kexec = Some(kexec),
        }
    }

    /// A watchdog reset, a panic's reboot or a crash: nothing passes an argument, nothing is
    /// kexec'd, and the flag, if this boot used it, is already gone.
    pub fn reset(&mut self) {
        self.kexec = None;
    }

    /// The flag lives in the firmware, not on the disk, and does not survive losing power.
    pub fn power_cut(&mut self) {
        self.tryboot_flag = false;
        self.kexec = None;
    }

    /// The kernel a kexec reboot starts: the files it was given, no firmware, no autoboot.txt.
    fn kexec_boot(&self, kexec: TrialReboot) -> Boot {
        let TrialReboot::Kexec {
            kernel,
            initrd,
            cmdline,
        } = kexec
        else {
            unreachable!("only kexecs are kept")
        };
        assert_eq!(
            fs::read(&kernel).ok().as_deref(),
            Some(&b"whole kernel"[..]),
            "kexec of {} , a kernel that is not whole",
            kernel.display()
        );
        assert!(initrd.is_file(), "kexec without {}", initrd.display());
        let partition = [SLOT_A_PARTITION, SLOT_B_PARTITION]
            .into_iter()
            .find(|&n| kernel.starts_with(self.partition_dir(n)))
            .expect("kexec of a kernel outside the slots' boot partitions");
        Boot {
            partition,
            slot: slot_of(&cmdline),
            tryboot: false,
            kexec: true,
        }
    }

    /// One boot, as autoboot.adoc describes it: `[all]` always applies, `[tryboot]` only with
    /// the flag, a later setting overrides an earlier one (the documented example relies on
    /// `[tryboot]`'s boot_partition overriding `[all]`'s), and the flag is cleared as it is
    /// used, before anything on the partition runs.
    pub fn boot(&mut self) -> Boot {
        if let Some(kexec) = self.kexec.take() {
            return self.kexec_boot(kexec);
        }
        let flag = std::mem::take(&mut self.tryboot_flag);
        let bytes = fs::read(self.partition_dir(AUTOBOOT_PARTITION).join("autoboot.txt")).unwrap();
        let read = &bytes[..bytes.len().min(512)];
        let text = std::str::from_utf8(read).expect("autoboot.txt is not text");
        let mut applies = true;
        let mut tryboot_a_b = false;
        let mut partition = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line {
                "[all]" => applies = true,
                "[tryboot]" => applies = flag,
                "[none]" => applies = false,
                _ if line.starts_with('[') => panic!("filter {line} is not simulated"),
                _ if !applies => {}
                _ => {
                    let (key, value) = line.split_once('=').expect("not a setting");
                    match key.trim() {
                        "tryboot_a_b" => tryboot_a_b = value.trim() == "1",
                        "boot_partition" => partition = Some(value.trim().parse::<u32>().unwrap()),
                        other => panic!("setting {other} is not simulated"),
                    }
                }
            }
        }
        assert!(
            !flag || tryboot_a_b,
            "a tryboot without tryboot_a_b=1 loads tryboot.txt, which no Carapace partition has"
        );
        let partition = partition.expect("no boot_partition: not simulated");
        let dir = self.partition_dir(partition);
        // A Pi 5 boots a FAT partition only if it holds config.txt.
        assert!(
            dir.join("config.txt").is_file(),
            "partition {partition} is not bootable (no config.txt)"
        );
        assert_eq!(
            fs::read(dir.join("kernel_2712.img")).ok().as_deref(),
            Some(&b"whole kernel"[..]),
            "partition {partition} boots a kernel that is not whole"
        );
        let cmdline = fs::read_to_string(dir.join("cmdline.txt"))
            .unwrap_or_else(|_| panic!("partition {partition} has no cmdline.txt"));
        Boot {
            partition,
            slot: slot_of(&cmdline),
            tryboot: flag,
            kexec: false,
        }
    }

    /// One boot, and boot control as the system it started opens it.
    pub fn start(&mut self) -> (Boot, PiTryboot) {
        let boot = self.boot();
        let control = self.control(boot.slot);
        (boot, control)
    }
}

/// `carapace.slot=` of a command line, which is how the booted system learns its slot.
fn slot_of(cmdline: &str) -> Slot {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("carapace.slot="))
        .expect("no carapace.slot= on the command line")
        .parse()
        .unwrap()
}

/// A slot's kernel command line, as the update service builds it.
pub fn kernel_args(slot: Slot) -> String {
    format!("console=ttyAMA10,115200 quiet panic=10 carapace.slot={slot}")
}
