//! A file-backed stand-in for the ESP, for unit tests of code that drives boot control
//! (PID 1's commit, agentd's updater) without an ESP or root.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::transitions::EntryStore;
use crate::atomic_file;
use crate::boot_entry::EntryName;
use crate::error::Error;
use crate::slot::Slot;

/// The state file holds the entries' file names, exactly what the ESP directory would hold, so
/// a test can read it and see the names systemd-boot would see.
#[derive(Serialize, Deserialize)]
struct State {
    entries: Vec<String>,
}

/// Same semantics as [`super::SystemdBoot`]; the entries live in one JSON state file that is
/// replaced atomically on every change.
#[derive(Clone, Debug)]
pub struct FileBootControl {
    path: PathBuf,
    booted: Slot,
}

impl FileBootControl {
    /// Writes a fresh state file holding `entries` (replacing any old one) and opens it.
    pub fn create(
        path: impl Into<PathBuf>,
        booted: Slot,
        entries: &[EntryName],
    ) -> Result<FileBootControl, Error> {
        let control = FileBootControl::new(path, booted);
        control.save(entries)?;
        Ok(control)
    }

    /// Opens an existing state file, e.g. to "reboot" into `booted`.
    pub fn new(path: impl Into<PathBuf>, booted: Slot) -> FileBootControl {
        FileBootControl {
            path: path.into(),
            booted,
        }
    }

    /// The entries as they are now, for a test's assertions.
    pub fn entries(&self) -> Result<Vec<EntryName>, Error> {
        let text = fs::read_to_string(&self.path)
            .map_err(|err| Error::io("read boot state file", &self.path, err))?;
        let state: State = serde_json::from_str(&text).map_err(|err| self.corrupt(err))?;
        state
            .entries
            .iter()
            .map(|name| {
                EntryName::parse(name)
                    .ok_or_else(|| self.corrupt(format!("'{name}' is not a Carapace entry name")))
            })
            .collect()
    }

    fn save(&self, entries: &[EntryName]) -> Result<(), Error> {
        let state = State {
            entries: entries.iter().map(EntryName::file_name).collect(),
        };
        let mut text = serde_json::to_string_pretty(&state).map_err(|err| self.corrupt(err))?;
        text.push('\n');
        atomic_file::write(&self.path, text.as_bytes(), 0o644)
            .map_err(|err| Error::io("write boot state file", &self.path, err))
    }

    fn corrupt(&self, reason: impl ToString) -> Error {
        Error::CorruptState {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }
}

impl EntryStore for FileBootControl {
    fn booted(&self) -> Slot {
        self.booted
    }

    fn location(&self) -> PathBuf {
        self.path.clone()
    }

    fn entries(&self) -> Result<Vec<EntryName>, Error> {
        FileBootControl::entries(self)
    }

    fn rename(&mut self, from: EntryName, to: EntryName) -> Result<(), Error> {
        let renamed: Vec<EntryName> = self
            .entries()?
            .into_iter()
            .map(|entry| if entry == from { to } else { entry })
            .collect();
        self.save(&renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_control::BootControl;

    #[test]
    fn state_file_holds_the_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let entries = [EntryName::committed(Slot::A), EntryName::trial(Slot::B, 3)];
        let control = FileBootControl::create(&path, Slot::A, &entries).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"carapace-a.conf\"") && text.contains("\"carapace-b+3.conf\""));
        assert_eq!(control.entries().unwrap(), entries);
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        for text in ["not json", r#"{"entries":["carapace-c.conf"]}"#] {
            fs::write(&path, text).unwrap();
            let err = FileBootControl::new(&path, Slot::A).is_trial().unwrap_err();
            assert!(matches!(err, Error::CorruptState { .. }), "{err}");
            assert!(err.to_string().contains("boot.json"), "{err}");
        }
    }

    #[test]
    fn missing_state_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let control = FileBootControl::new(dir.path().join("absent.json"), Slot::A);
        assert!(matches!(control.is_trial(), Err(Error::Io { .. })));
    }
}
