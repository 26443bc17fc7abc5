//! A file-backed stand-in for the ESP, for unit tests of code that drives boot control
//! (the update service's retire, install, commit and rollback) without an ESP or root.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::transitions::EntryStore;
use crate::atomic_file;
use crate::boot_entry::EntryName;
use crate::error::Error;
use crate::slot::Slot;

/// The state file maps the entries' file names, exactly what the ESP directory would hold, to
/// their text, so a test can read it and see what systemd-boot would see.
#[derive(Serialize, Deserialize)]
struct State {
    entries: BTreeMap<String, String>,
}

/// Same semantics as [`super::SystemdBoot`]; the entries live in one JSON state file that is
/// replaced atomically on every change.
#[derive(Clone, Debug)]
pub struct FileBootControl {
    path: PathBuf,
    booted: Slot,
}

impl FileBootControl {
    /// Writes a fresh state file holding `entries`, each name with its text (replacing any old
    /// file), and opens it.
    pub fn create(
        path: impl Into<PathBuf>,
        booted: Slot,
        entries: &[(EntryName, String)],
    ) -> Result<FileBootControl, Error> {
        let control = FileBootControl::new(path, booted);
        let map = entries
            .iter()
            .map(|(name, body)| (name.file_name(), body.clone()))
            .collect();
        control.save(&map)?;
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
        Ok(self
            .entries_with_bodies()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// The entries as they are now with their text, in file-name order.
    pub fn entries_with_bodies(&self) -> Result<Vec<(EntryName, String)>, Error> {
        self.load()?
            .into_iter()
            .map(|(name, body)| {
                EntryName::parse(&name)
                    .map(|entry| (entry, body))
                    .ok_or_else(|| self.corrupt(format!("'{name}' is not a Carapace entry name")))
            })
            .collect()
    }

    fn load(&self) -> Result<BTreeMap<String, String>, Error> {
        let text = fs::read_to_string(&self.path)
            .map_err(|err| Error::io("read boot state file", &self.path, err))?;
        let state: State = serde_json::from_str(&text).map_err(|err| self.corrupt(err))?;
        Ok(state.entries)
    }

    fn save(&self, entries: &BTreeMap<String, String>) -> Result<(), Error> {
        let state = State {
            entries: entries.clone(),
        };
        let mut text = serde_json::to_string_pretty(&state).map_err(|err| self.corrupt(err))?;
        text.push('\n');
        atomic_file::write(&self.path, text.as_bytes(), 0o644)
            .map_err(|err| Error::io("write boot state file", &self.path, err))
    }

    /// Loads, changes in memory and saves once.
    fn change(
        &mut self,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut entries = self.load()?;
        edit(&mut entries)?;
        self.save(&entries)
    }

    fn corrupt(&self, reason: impl ToString) -> Error {
        Error::CorruptState {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn missing(&self, name: EntryName) -> Error {
        self.corrupt(format!("it holds no entry {}", name.file_name()))
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

    fn body(&self, name: EntryName) -> Result<String, Error> {
        self.load()?
            .remove(&name.file_name())
            .ok_or_else(|| self.missing(name))
    }

    fn rename(&mut self, from: EntryName, to: EntryName) -> Result<(), Error> {
        let missing = self.missing(from);
        self.change(|entries| {
            let body = entries.remove(&from.file_name()).ok_or(missing)?;
            entries.insert(to.file_name(), body);
            Ok(())
        })
    }

    fn remove(&mut self, name: EntryName) -> Result<(), Error> {
        let missing = self.missing(name);
        self.change(|entries| entries.remove(&name.file_name()).map(|_| ()).ok_or(missing))
    }

    fn create(&mut self, name: EntryName, body: &str) -> Result<(), Error> {
        self.change(|entries| {
            entries.insert(name.file_name(), body.to_owned());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_control::BootControl;

    #[test]
    fn state_file_holds_the_file_names_and_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let entries = [
            (EntryName::committed(Slot::A), "version 1\n".to_owned()),
            (EntryName::trial(Slot::B, 3), "version 2\n".to_owned()),
        ];
        let control = FileBootControl::create(&path, Slot::A, &entries).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"carapace-a.conf\": \"version 1\\n\"")
                && text.contains("\"carapace-b+3.conf\": \"version 2\\n\""),
            "{text}"
        );
        assert_eq!(control.entries_with_bodies().unwrap(), entries);
        assert_eq!(
            control.entries().unwrap(),
            [EntryName::committed(Slot::A), EntryName::trial(Slot::B, 3)]
        );
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        for text in [
            "not json",
            r#"{"entries":{"carapace-c.conf":""}}"#,
            // The list of names only, from before the fake kept the entries' text.
            r#"{"entries":["carapace-a.conf"]}"#,
        ] {
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
