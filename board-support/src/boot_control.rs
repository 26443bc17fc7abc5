//! Which slot boots next, and the trial/commit/rollback cycle of an update: `retire` the other
//! slot before its files are rewritten, `install_trial` once they are whole, `commit` once the
//! new slot proved healthy, `rollback` when it did not. systemd-boot does the counting in
//! between: it renames a counting entry on every boot (`+3` → `+2-1` → ...) and sorts entries
//! with no tries left last, so a slot that never commits falls back to the other one by itself
//! (boot_entry.rs has its whole order). On a Raspberry Pi 5 the firmware counts nothing:
//! [`PiTryboot`] makes a trial the one boot after a tryboot reboot, and a reset during it falls
//! back by itself (pi_tryboot.rs says what that relies on).

mod autoboot;
mod file_boot_control;
pub mod pi_config;
mod pi_tryboot;
mod systemd_boot;
mod transitions;

pub use autoboot::{AUTOBOOT_FILE, AUTOBOOT_MAX_BYTES, Autoboot};
pub use file_boot_control::FileBootControl;
pub use pi_tryboot::{
    CMDLINE_FILE, KEXEC_PROGRAM, PiBootPartition, PiTrialStart, PiTryboot, TRYBOOT_REBOOT_ARGUMENT,
    TrialReboot,
};
pub use systemd_boot::SystemdBoot;

use crate::error::Error;
use crate::slot::Slot;

pub trait BootControl {
    /// The slot this system booted from.
    fn current_slot(&self) -> Result<Slot, Error>;

    /// The booted slot's entry is still counting: this boot is a trial that has not been
    /// committed yet.
    fn is_trial(&self) -> Result<bool, Error>;

    /// Next boot tries `slot`, with [`crate::DEFAULT_TRIES`] attempts before systemd-boot gives
    /// up on it. The slot's entry must already exist; its contents are kept.
    fn arm_trial(&mut self, slot: Slot) -> Result<(), Error>;

    /// The booted slot proved healthy: stop counting its boots. Does nothing when the booted
    /// slot is not on trial.
    fn commit(&mut self) -> Result<(), Error>;

    /// Marks the booted slot bad so the other slot boots next. Refuses when the other slot has
    /// no entry or is bad too, because then the bad slot would boot again anyway.
    fn rollback(&mut self) -> Result<(), Error>;

    /// Removes `slot`'s entry so nothing boots the slot while its files are rewritten; the
    /// booted slot keeps booting whatever happens until [`BootControl::install_trial`]. No
    /// entry is fine. Refuses the booted slot.
    fn retire(&mut self, slot: Slot) -> Result<(), Error>;

    /// Writes `slot`'s entry as a fresh trial ([`crate::DEFAULT_TRIES`] boots) of
    /// `software_version` booting with `kernel_args`, with a boot generation one above every
    /// other entry's, so the next boot tries it first even when it holds an older version.
    /// Any older entry of the slot is removed first; the new one appears atomically, and that
    /// is the moment the slot becomes bootable: its kernel, initrd and root must be whole
    /// before this is called. Refuses the booted slot.
    fn install_trial(
        &mut self,
        slot: Slot,
        software_version: &str,
        kernel_args: &str,
    ) -> Result<(), Error>;

    /// As [`BootControl::install_trial`], for a slot that boots its signed unified kernel image
    /// (`<slot>/`[`crate::boot_entry::UKI_FILE`], with its own command line): the entry only
    /// names the image. Boards whose firmware boots no UKI refuse.
    fn install_uki_trial(&mut self, slot: Slot, software_version: &str) -> Result<(), Error>;
}

#[cfg(test)]
mod tests;
