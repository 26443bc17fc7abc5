//! The state changes of boot control, written once for every place entries can live (an ESP
//! directory, or the test fake's state file) so both behave the same.

use std::path::PathBuf;

use crate::boot_entry::{DEFAULT_TRIES, EntryName};
use crate::error::Error;
use crate::slot::Slot;

/// Where the entries live. A rename must be atomic: after a crash the entry has either its old
/// or its new name.
/// Public only inside this private module: every store gets `BootControl` from the one
/// blanket impl below.
pub trait EntryStore {
    /// The slot this system booted from.
    fn booted(&self) -> Slot;
    /// For error messages: the directory or file that holds the entries.
    fn location(&self) -> PathBuf;
    fn entries(&self) -> Result<Vec<EntryName>, Error>;
    fn rename(&mut self, from: EntryName, to: EntryName) -> Result<(), Error>;
}

/// The one entry of `slot`. Two entries for a slot mean something wrote one without removing
/// the other; guessing which one systemd-boot prefers could commit or roll back the wrong one.
pub(super) fn entry_of(store: &impl EntryStore, slot: Slot) -> Result<EntryName, Error> {
    let found: Vec<EntryName> = store
        .entries()?
        .into_iter()
        .filter(|e| e.slot == slot)
        .collect();
    match found[..] {
        [entry] => Ok(entry),
        [] => Err(Error::NoEntry {
            slot,
            location: store.location(),
        }),
        _ => Err(Error::DuplicateEntries {
            slot,
            location: store.location(),
            names: found.iter().map(EntryName::file_name).collect(),
        }),
    }
}

pub(super) fn is_trial(store: &impl EntryStore, booted: Slot) -> Result<bool, Error> {
    Ok(entry_of(store, booted)?.is_counting())
}

pub(super) fn arm_trial(store: &mut impl EntryStore, slot: Slot) -> Result<(), Error> {
    let entry = entry_of(store, slot)?;
    rename_unless_same(store, entry, EntryName::trial(slot, DEFAULT_TRIES))
}

pub(super) fn commit(store: &mut impl EntryStore, booted: Slot) -> Result<(), Error> {
    let entry = entry_of(store, booted)?;
    if !entry.is_counting() {
        return Ok(());
    }
    store.rename(entry, EntryName::committed(booted))
}

pub(super) fn rollback(store: &mut impl EntryStore, booted: Slot) -> Result<(), Error> {
    let entry = entry_of(store, booted)?;
    let fallback = entry_of(store, booted.other())?;
    if fallback.is_bad() {
        return Err(Error::NoGoodSlot {
            slot: booted.other(),
            name: fallback.file_name(),
        });
    }
    // The slot is running, so at least this boot was tried, even if it was never counted.
    let bad = EntryName {
        slot: booted,
        tries_left: Some(0),
        tries_done: entry.tries_done.max(1),
    };
    rename_unless_same(store, entry, bad)
}

fn rename_unless_same(
    store: &mut impl EntryStore,
    from: EntryName,
    to: EntryName,
) -> Result<(), Error> {
    if from == to {
        return Ok(());
    }
    store.rename(from, to)
}

impl<T: EntryStore> super::BootControl for T {
    fn current_slot(&self) -> Result<Slot, Error> {
        Ok(self.booted())
    }

    fn is_trial(&self) -> Result<bool, Error> {
        is_trial(self, self.booted())
    }

    fn arm_trial(&mut self, slot: Slot) -> Result<(), Error> {
        arm_trial(self, slot)
    }

    fn commit(&mut self) -> Result<(), Error> {
        let booted = self.booted();
        commit(self, booted)
    }

    fn rollback(&mut self) -> Result<(), Error> {
        let booted = self.booted();
        rollback(self, booted)
    }
}
