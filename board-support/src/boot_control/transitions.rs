//! The state changes of boot control, written once for every place entries can live (an ESP
//! directory, or the test fake's state file) so both behave the same.

use std::path::PathBuf;

use crate::boot_entry::{
    DEFAULT_TRIES, EntryName, entry_generation, is_entry_value, render_entry, render_uki_entry,
};
use crate::error::Error;
use crate::slot::Slot;

/// Where the entries live. Every change must be atomic and durable before it returns: after a
/// crash an entry has either its old or its new name, a removed entry stays removed, and a
/// written entry is there whole or not at all.
/// Public only inside this private module: every store gets `BootControl` from the one
/// blanket impl below.
pub trait EntryStore {
    /// The slot this system booted from.
    fn booted(&self) -> Slot;
    /// For error messages: the directory or file that holds the entries.
    fn location(&self) -> PathBuf;
    fn entries(&self) -> Result<Vec<EntryName>, Error>;
    /// The text of an entry that exists.
    fn body(&self, name: EntryName) -> Result<String, Error>;
    fn rename(&mut self, from: EntryName, to: EntryName) -> Result<(), Error>;
    fn remove(&mut self, name: EntryName) -> Result<(), Error>;
    /// Creates the entry `name` with `body` in one atomic step (written and synced under a
    /// name nothing reads as an entry, then renamed): the moment it appears, it is whole.
    fn create(&mut self, name: EntryName, body: &str) -> Result<(), Error>;
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

/// Takes `slot`'s entry away so nothing boots the slot while its files are rewritten. Every
/// entry of the slot goes (a duplicate left by a crash too); none at all is fine.
pub(super) fn retire(store: &mut impl EntryStore, booted: Slot, slot: Slot) -> Result<(), Error> {
    refuse_booted(booted, slot, "retire")?;
    for entry in store.entries()?.into_iter().filter(|e| e.slot == slot) {
        store.remove(entry)?;
    }
    Ok(())
}

/// Makes `slot` bootable as a fresh trial that sorts before every other entry: its generation
/// is one above the highest of the entries there now. Older entries of the slot are removed
/// first, so the new one is its only entry; creating it is the moment the slot can boot.
pub(super) fn install_trial(
    store: &mut impl EntryStore,
    booted: Slot,
    slot: Slot,
    software_version: &str,
    kernel_args: Option<&str>,
) -> Result<(), Error> {
    refuse_booted(booted, slot, "install a trial of")?;
    let values = [
        Some(("software version", software_version)),
        kernel_args.map(|args| ("kernel command line", args)),
    ];
    for (field, value) in values.into_iter().flatten() {
        if !is_entry_value(value) {
            return Err(Error::BadEntryValue {
                field,
                value: value.to_owned(),
            });
        }
    }
    let entries = store.entries()?;
    let mut highest = 0;
    for entry in &entries {
        // An entry from before generations (its version line the software version) counts as
        // 0: any generation sorts above the 0.x versions those carried.
        highest = highest.max(entry_generation(&store.body(*entry)?).unwrap_or(0));
    }
    for entry in entries.into_iter().filter(|e| e.slot == slot) {
        store.remove(entry)?;
    }
    let generation = highest.saturating_add(1);
    let body = match kernel_args {
        Some(args) => render_entry(slot, generation, software_version, args),
        None => render_uki_entry(slot, generation, software_version),
    };
    store.create(EntryName::trial(slot, DEFAULT_TRIES), &body)
}

/// Rewriting the running slot's entry or files could leave a box that boots nothing.
fn refuse_booted(booted: Slot, slot: Slot, action: &'static str) -> Result<(), Error> {
    if slot == booted {
        return Err(Error::BootedSlot { slot, action });
    }
    Ok(())
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

    fn retire(&mut self, slot: Slot) -> Result<(), Error> {
        let booted = self.booted();
        retire(self, booted, slot)
    }

    fn install_trial(
        &mut self,
        slot: Slot,
        software_version: &str,
        kernel_args: &str,
    ) -> Result<(), Error> {
        let booted = self.booted();
        install_trial(self, booted, slot, software_version, Some(kernel_args))
    }

    fn install_uki_trial(&mut self, slot: Slot, software_version: &str) -> Result<(), Error> {
        let booted = self.booted();
        install_trial(self, booted, slot, software_version, None)
    }
}
