//! Boot control for the Raspberry Pi 5, whose firmware has no boot counting: each slot has its
//! own FAT boot partition, the first partition holds only `autoboot.txt`, and a trial is the one
//! boot the firmware makes from `[tryboot]`'s partition after `reboot "0 tryboot"`.
//!
//! What this relies on, and where it was read:
//! - autoboot.txt, `[tryboot]`, `tryboot_a_b=1` and `reboot "0 tryboot"` (0 = the default
//!   partition, needed because flags follow the partition number): raspberrypi/documentation,
//!   `documentation/asciidoc/computers/config_txt/autoboot.adoc` (PRs #2698 and #2701). Its
//!   example update flow commits by replacing autoboot.txt and cancels by a normal reboot.
//! - The flag is one-shot: "Since the flag is cleared before starting the firmware, a crash or
//!   reset will cause the original config.txt file to be loaded on the next reboot"
//!   (raspberrypi/documentation PR #2416, `raspberry-pi/bootflow-2711.adoc`, "Fail-safe OS
//!   updates (TRYBOOT)"). So a trial gets exactly one boot, and the firmware writes nothing to
//!   the disk (no counter to burn). That it does not survive a power-off either is second-hand
//!   (shared/design/reference/boards-protocols.md 1.2) and makes no difference here: a power
//!   cut during the trial lands on `[all]`'s partition whichever way it goes.
//! - The flag travels from Linux only through the Raspberry Pi kernel: its
//!   `drivers/firmware/raspberrypi.c` reboot notifier (raspberrypi/linux,
//!   `rpi_firmware_notify_reboot`) sends `RPI_FIRMWARE_SET_REBOOT_FLAGS` with bit 0 when the
//!   reboot(2) RESTART2 argument contains `" tryboot"`. Mainline has no such notifier
//!   (boards-protocols.md 1.2), and neither has Debian's kernel, the Pi image's default.
//! - The fallback for such a kernel ([`PiTrialStart::Kexec`]): the running system kexecs into
//!   the trial slot's kernel, initramfs and cmdline.txt. That boot passes through no firmware,
//!   so it is one-shot in the same way: any reset, crash or power cut after it starts the
//!   firmware, which boots `[all]`'s slot. What it costs is in docs/boot-contract.md.
//! - Telling a trial by comparing the booted partition with autoboot.txt's `[all]` rather than
//!   by the device tree's `chosen/bootloader/tryboot` is what Rugix does (silitics/rugpi,
//!   `www/versioned_docs/version-0.7.5/advanced/boot-flows.md`, "Tryboot"); it needs no
//!   /proc/device-tree and stays true for the whole boot.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::BootControl;
use super::autoboot::{AUTOBOOT_FILE, Autoboot};
use super::pi_config;
use crate::atomic_file;
use crate::boot_entry::is_entry_value;
use crate::error::Error;
use crate::slot::Slot;

/// What the update service asks PID 1 to pass to reboot(2) (LINUX_REBOOT_CMD_RESTART2) to make
/// the next boot a tryboot. The leading `0` is the partition (the default one); the kernel's
/// notifier looks for `" tryboot"` with its space.
pub const TRYBOOT_REBOOT_ARGUMENT: &str = "0 tryboot";

/// Where kexec-tools' program is in an image that starts trials with [`PiTrialStart::Kexec`].
pub const KEXEC_PROGRAM: &str = "/usr/sbin/kexec";

/// How a trial's one boot is started; the board's kernel decides which it can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PiTrialStart {
    /// The Raspberry Pi kernel: reboot(2) RESTART2 with [`TRYBOOT_REBOOT_ARGUMENT`] sets the
    /// firmware's one-shot flag, and the firmware boots `[tryboot]`'s partition once.
    FirmwareFlag,
    /// A kernel without the tryboot notifier (Debian's): kexec into `[tryboot]`'s slot.
    Kexec,
}

/// What the next orderly reboot must do to start the installed trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrialReboot {
    /// reboot(2) with LINUX_REBOOT_CMD_RESTART2 and this argument.
    Tryboot(&'static str),
    /// Load these with kexec and reboot with LINUX_REBOOT_CMD_KEXEC.
    Kexec {
        kernel: PathBuf,
        initrd: PathBuf,
        /// The slot's cmdline.txt, without its line end.
        cmdline: String,
    },
}

/// The kernel command line in a slot's boot partition; the firmware's default name. Boot
/// control writes it last when it installs a slot and removes it when it retires one, so it
/// plays the part of systemd-boot's entry: a slot without it is not installed.
pub const CMDLINE_FILE: &str = "cmdline.txt";

/// One slot's FAT boot partition: its number on the disk (what autoboot.txt says) and where
/// it is mounted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiBootPartition {
    pub number: u32,
    pub dir: PathBuf,
}

/// Works on `<autoboot_dir>/autoboot.txt` and each slot's `cmdline.txt`. `[all]` names the
/// committed slot; `[tryboot]` names the slot a tryboot reboot tries, which is the committed
/// slot too except while a trial is installed or running. See docs/boot-contract.md, "Raspberry
/// Pi 5: tryboot".
#[derive(Clone, Debug)]
pub struct PiTryboot {
    autoboot_dir: PathBuf,
    a: PiBootPartition,
    b: PiBootPartition,
    booted: Slot,
    start: PiTrialStart,
}

/// autoboot.txt's two sections, as slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sections {
    all: Slot,
    tryboot: Slot,
}

impl PiTryboot {
    /// `autoboot_dir` is where the first FAT partition is mounted; `a` and `b` are the slots'
    /// boot partitions; `booted` comes from the kernel command line (`BootParams::slot`), which
    /// is the booted partition's own cmdline.txt; `start` is how this kernel starts a trial.
    pub fn new(
        autoboot_dir: impl Into<PathBuf>,
        a: PiBootPartition,
        b: PiBootPartition,
        booted: Slot,
        start: PiTrialStart,
    ) -> Result<PiTryboot, Error> {
        // Partition 0 is the firmware's "first bootable"; 1 holds autoboot.txt and must not be
        // bootable itself. Either would make a slot's number mean something else.
        if a.number == b.number || [a.number, b.number].iter().any(|&n| n <= 1) {
            return Err(Error::PiBootPartitions {
                slot_a: a.number,
                slot_b: b.number,
            });
        }
        Ok(PiTryboot {
            autoboot_dir: autoboot_dir.into(),
            a,
            b,
            booted,
            start,
        })
    }

    pub fn autoboot_path(&self) -> PathBuf {
        self.autoboot_dir.join(AUTOBOOT_FILE)
    }

    /// What the next orderly reboot must do, or `None` for a plain one: start the trial
    /// whenever `[tryboot]` names another slot than `[all]`. That is the case from
    /// `install_trial` until the trial is committed or rolled back (and after a trial that
    /// never got that far, until the next retire: the firmware keeps no record that it was
    /// tried, so the update service asks for this only right after it installed a trial).
    /// Nothing else starts a trial: a reset or power cut never carries an argument, and never
    /// kexecs.
    pub fn trial_reboot(&self) -> Result<Option<TrialReboot>, Error> {
        let sections = self.load()?;
        if sections.tryboot == sections.all {
            return Ok(None);
        }
        match self.start {
            PiTrialStart::FirmwareFlag => Ok(Some(TrialReboot::Tryboot(TRYBOOT_REBOOT_ARGUMENT))),
            PiTrialStart::Kexec => self.kexec_files(sections.tryboot).map(Some),
        }
    }

    /// The kernel, initramfs and command line the firmware would boot from `slot`'s partition.
    fn kexec_files(&self, slot: Slot) -> Result<TrialReboot, Error> {
        self.require_installed(slot)?;
        let dir = &self.partition(slot).dir;
        let config_path = dir.join(pi_config::CONFIG_FILE);
        let config =
            fs::read_to_string(&config_path).map_err(|err| Error::io("read", &config_path, err))?;
        let (kernel, initrd) =
            pi_config::boot_files(&config).ok_or(Error::PiConfigTxt { path: config_path })?;
        let cmdline_path = self.cmdline_path(slot);
        let cmdline = fs::read_to_string(&cmdline_path)
            .map_err(|err| Error::io("read", &cmdline_path, err))?;
        Ok(TrialReboot::Kexec {
            kernel: dir.join(kernel),
            initrd: dir.join(initrd),
            cmdline: cmdline.trim_end().to_owned(),
        })
    }

    fn partition(&self, slot: Slot) -> &PiBootPartition {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }

    fn cmdline_path(&self, slot: Slot) -> PathBuf {
        self.partition(slot).dir.join(CMDLINE_FILE)
    }

    fn slot_of(&self, number: u32, section: &'static str) -> Result<Slot, Error> {
        match number {
            n if n == self.a.number => Ok(Slot::A),
            n if n == self.b.number => Ok(Slot::B),
            partition => Err(Error::AutobootPartition {
                path: self.autoboot_path(),
                section,
                partition,
                slot_a: self.a.number,
                slot_b: self.b.number,
            }),
        }
    }

    fn load(&self) -> Result<Sections, Error> {
        let path = self.autoboot_path();
        let bytes = fs::read(&path).map_err(|err| Error::io("read", &path, err))?;
        let autoboot = Autoboot::parse(&bytes, &path)?;
        Ok(Sections {
            all: self.slot_of(autoboot.boot_partition, "all")?,
            tryboot: self.slot_of(autoboot.tryboot_partition, "tryboot")?,
        })
    }

    /// Loads autoboot.txt once, decides in memory, and writes it once if anything changed.
    /// FAT has no journal, so this rename is not the all-or-nothing step it is on ext4; it is
    /// still the smallest one there is (one directory entry changes), it is what Rugix does
    /// (silitics/rugpi's tryboot commit: `autoboot.txt.new`, sync_all, rename), and the
    /// temporary name next to it is one the firmware never reads.
    fn change(&self, edit: impl FnOnce(Sections) -> Sections) -> Result<(), Error> {
        let before = self.load()?;
        self.store(before, edit(before))
    }

    /// Writes `after` unless it is what was loaded (`before`).
    fn store(&self, before: Sections, after: Sections) -> Result<(), Error> {
        if after == before {
            return Ok(());
        }
        let text = Autoboot {
            boot_partition: self.partition(after.all).number,
            tryboot_partition: self.partition(after.tryboot).number,
        }
        .render();
        let path = self.autoboot_path();
        atomic_file::write(&path, text.as_bytes(), 0o644)
            .map_err(|err| Error::io("write", path, err))
    }

    /// A slot counts as installed while its cmdline.txt exists (see [`CMDLINE_FILE`]).
    fn require_installed(&self, slot: Slot) -> Result<(), Error> {
        let path = self.cmdline_path(slot);
        match fs::metadata(&path) {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Error::NoEntry {
                slot,
                location: self.partition(slot).dir.clone(),
            }),
            Err(err) => Err(Error::io("look for", path, err)),
        }
    }

    /// Rewriting the running slot's boot files could leave a box that boots nothing.
    fn refuse_booted(&self, slot: Slot, action: &'static str) -> Result<(), Error> {
        if slot == self.booted {
            return Err(Error::BootedSlot { slot, action });
        }
        Ok(())
    }
}

impl BootControl for PiTryboot {
    fn current_slot(&self) -> Result<Slot, Error> {
        Ok(self.booted)
    }

    /// The firmware booted this slot although `[all]` names the other: only the tryboot flag
    /// does that.
    fn is_trial(&self) -> Result<bool, Error> {
        Ok(self.load()?.all != self.booted)
    }

    /// Points `[tryboot]` at `slot`, so the next reboot with [`PiTryboot::trial_reboot`]
    /// boots it once. There are no tries to give back: a trial has one boot, and a reset or
    /// power cut during it always goes back to `[all]`'s slot. For the booted trial slot this
    /// keeps `[tryboot]` on it, so an orderly reboot with the argument returns to the trial.
    fn arm_trial(&mut self, slot: Slot) -> Result<(), Error> {
        self.require_installed(slot)?;
        self.change(|sections| Sections {
            tryboot: slot,
            ..sections
        })
    }

    fn commit(&mut self) -> Result<(), Error> {
        let booted = self.booted;
        // The tryboot pointer moves too: left on the old slot, a stray tryboot flag would boot
        // the slot the next update is about to rewrite.
        self.change(|sections| {
            if sections.all == booted {
                sections
            } else {
                Sections {
                    all: booted,
                    tryboot: booted,
                }
            }
        })
    }

    /// Both sections name the other slot, so whatever reboot comes next (with the tryboot
    /// argument or without, or a reset) boots it. The firmware keeps no "bad" mark, so this
    /// can only check that the other slot is installed (has its cmdline.txt), not that it is
    /// good; from a trial the other slot is the committed one it came from.
    fn rollback(&mut self) -> Result<(), Error> {
        let other = self.booted.other();
        self.require_installed(other)?;
        self.change(|_| Sections {
            all: other,
            tryboot: other,
        })
    }

    /// Both sections name the booted slot before `slot`'s cmdline.txt goes: no reboot of any
    /// kind can boot `slot` while its files are rewritten. During an uncommitted trial that
    /// makes the booted slot the committed one, as retiring the only other entry does with
    /// systemd-boot: there is nothing else left to fall back to.
    fn retire(&mut self, slot: Slot) -> Result<(), Error> {
        self.refuse_booted(slot, "retire")?;
        let booted = self.booted;
        self.change(|_| Sections {
            all: booted,
            tryboot: booted,
        })?;
        let path = self.cmdline_path(slot);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("remove", path, err));
            }
            _ => {}
        }
        let dir = &self.partition(slot).dir;
        atomic_file::sync_dir(dir).map_err(|err| Error::io("sync", dir, err))
    }

    /// Writes `slot`'s cmdline.txt (atomically; from then on the slot counts as installed),
    /// then points `[tryboot]` at it with `[all]` on the booted slot, the fallback. The slot
    /// boots at the next reboot that carries [`PiTryboot::trial_reboot`]. The Pi firmware
    /// shows no menu, so `software_version` is written nowhere.
    fn install_trial(
        &mut self,
        slot: Slot,
        _software_version: &str,
        kernel_args: &str,
    ) -> Result<(), Error> {
        self.refuse_booted(slot, "install a trial of")?;
        if !is_entry_value(kernel_args) {
            return Err(Error::BadEntryValue {
                field: "kernel command line",
                value: kernel_args.to_owned(),
            });
        }
        // Read first: with an autoboot.txt it cannot rewrite, it installs nothing at all.
        let before = self.load()?;
        let path = self.cmdline_path(slot);
        let text = format!("{kernel_args}\n");
        atomic_file::write(&path, text.as_bytes(), 0o644)
            .map_err(|err| Error::io("write", path, err))?;
        let after = Sections {
            all: self.booted,
            tryboot: slot,
        };
        self.store(before, after)
    }
    fn install_uki_trial(&mut self, _slot: Slot, _software_version: &str) -> Result<(), Error> {
        Err(Error::NoUki)
    }
}

#[cfg(test)]
mod firmware;
#[cfg(test)]
mod tests;
