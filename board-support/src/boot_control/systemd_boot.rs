//! Boot control on a mounted ESP, for systemd-boot with boot counting.

use std::fs;
use std::path::PathBuf;

use super::transitions::EntryStore;
use crate::atomic_file;
use crate::boot_entry::{ENTRIES_DIR, EntryName};
use crate::error::Error;
use crate::slot::Slot;

/// Works on `<esp>/loader/entries/carapace-*.conf`; other entries there are left alone.
#[derive(Clone, Debug)]
pub struct SystemdBoot {
    esp_dir: PathBuf,
    booted: Slot,
}

impl SystemdBoot {
    /// `esp_dir` is where the ESP is mounted; `booted` comes from the kernel command line
    /// (`BootParams::slot`).
    pub fn new(esp_dir: impl Into<PathBuf>, booted: Slot) -> SystemdBoot {
        SystemdBoot {
            esp_dir: esp_dir.into(),
            booted,
        }
    }

    fn entries_dir(&self) -> PathBuf {
        self.esp_dir.join(ENTRIES_DIR)
    }
}

impl EntryStore for SystemdBoot {
    fn booted(&self) -> Slot {
        self.booted
    }

    fn location(&self) -> PathBuf {
        self.entries_dir()
    }

    fn entries(&self) -> Result<Vec<EntryName>, Error> {
        let dir = self.entries_dir();
        let read_failed = |err| Error::io("list boot loader entries in", &dir, err);
        let mut entries = Vec::new();
        for dir_entry in fs::read_dir(&dir).map_err(read_failed)? {
            let file_name = dir_entry.map_err(read_failed)?.file_name();
            if let Some(entry) = file_name.to_str().and_then(EntryName::parse) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    fn body(&self, name: EntryName) -> Result<String, Error> {
        let path = self.entries_dir().join(name.file_name());
        fs::read_to_string(&path).map_err(|err| Error::io("read boot loader entry", path, err))
    }

    fn rename(&mut self, from: EntryName, to: EntryName) -> Result<(), Error> {
        let dir = self.entries_dir();
        let from_path = dir.join(from.file_name());
        atomic_file::rename_durably(&from_path, &dir.join(to.file_name()))
            .map_err(|err| Error::io("rename boot loader entry", from_path, err))
    }

    fn remove(&mut self, name: EntryName) -> Result<(), Error> {
        let dir = self.entries_dir();
        let path = dir.join(name.file_name());
        fs::remove_file(&path).map_err(|err| Error::io("remove boot loader entry", path, err))?;
        atomic_file::sync_dir(&dir).map_err(|err| Error::io("sync", dir, err))
    }

    /// atomic_file's temporary name is `.<name>.tmp`: EntryName::parse ignores it, and
    /// systemd-boot reads only names ending in `.conf`.
    fn create(&mut self, name: EntryName, body: &str) -> Result<(), Error> {
        let path = self.entries_dir().join(name.file_name());
        atomic_file::write(&path, body.as_bytes(), 0o644)
            .map_err(|err| Error::io("write boot loader entry", path, err))
    }
}
