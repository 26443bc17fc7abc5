//! Which slot boots next, and the trial/commit/rollback cycle of an update:
//! `arm_trial` before rebooting into a freshly written slot, `commit` once it proved healthy,
//! `rollback` when it did not. systemd-boot does the counting in between: it renames a
//! counting entry on every boot (`+3` → `+2-1` → ...) and sorts entries with no tries left
//! last, so a slot that never commits falls back to the other one by itself.

mod file_boot_control;
mod systemd_boot;
mod transitions;

pub use file_boot_control::FileBootControl;
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
}

#[cfg(test)]
mod tests;
