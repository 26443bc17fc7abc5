//! One set of behaviour tests, run against both the ESP directory and the file-backed fake.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{BootControl, FileBootControl, SystemdBoot};
use crate::boot_entry::{ENTRIES_DIR, EntryName};
use crate::error::Error;
use crate::slot::Slot;

struct Case {
    kind: &'static str,
    control: Box<dyn BootControl>,
    dir: TempDir,
}

impl Case {
    fn entries_dir(&self) -> PathBuf {
        self.dir.path().join(ENTRIES_DIR)
    }

    /// The entry file names now, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match self.kind {
            "esp" => fs::read_dir(self.entries_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| EntryName::parse(name).is_some())
                .collect(),
            _ => FileBootControl::new(state_file(self.dir.path()), Slot::A)
                .entries()
                .unwrap()
                .iter()
                .map(EntryName::file_name)
                .collect(),
        };
        names.sort();
        names
    }
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("boot.json")
}

fn content_of(name: &str) -> String {
    format!("title for {name}\n")
}

fn esp(booted: Slot, names: &[&str]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let entries = dir.path().join(ENTRIES_DIR);
    fs::create_dir_all(&entries).unwrap();
    for name in names {
        fs::write(entries.join(name), content_of(name)).unwrap();
    }
    fs::write(entries.join("other.conf"), "not ours\n").unwrap();
    Case {
        kind: "esp",
        control: Box::new(SystemdBoot::new(dir.path(), booted)),
        dir,
    }
}

fn fake(booted: Slot, names: &[&str]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<EntryName> = names.iter().map(|n| EntryName::parse(n).unwrap()).collect();
    let control = FileBootControl::create(state_file(dir.path()), booted, &entries).unwrap();
    Case {
        kind: "fake",
        control: Box::new(control),
        dir,
    }
}

fn both(booted: Slot, names: &[&str]) -> [Case; 2] {
    [esp(booted, names), fake(booted, names)]
}

#[test]
fn current_slot_is_the_booted_one() {
    for case in both(Slot::B, &["carapace-a.conf", "carapace-b.conf"]) {
        assert_eq!(
            case.control.current_slot().unwrap(),
            Slot::B,
            "{}",
            case.kind
        );
    }
}

#[test]
fn commit_stops_counting() {
    for trial in [
        "carapace-a+2-1.conf",
        "carapace-a+3.conf",
        "carapace-a+0-3.conf",
    ] {
        for mut case in both(Slot::A, &[trial, "carapace-b.conf"]) {
            assert!(case.control.is_trial().unwrap(), "{}", case.kind);
            case.control.commit().unwrap();
            assert!(!case.control.is_trial().unwrap(), "{}", case.kind);
            assert_eq!(
                case.names(),
                ["carapace-a.conf", "carapace-b.conf"],
                "{}",
                case.kind
            );
        }
    }
}

#[test]
fn commit_without_trial_changes_nothing() {
    for mut case in both(Slot::B, &["carapace-a+3.conf", "carapace-b.conf"]) {
        assert!(!case.control.is_trial().unwrap());
        case.control.commit().unwrap();
        assert_eq!(
            case.names(),
            ["carapace-a+3.conf", "carapace-b.conf"],
            "{}",
            case.kind
        );
    }
}

#[test]
fn arm_trial_restarts_the_count() {
    for old in [
        "carapace-b.conf",
        "carapace-b+0-3.conf",
        "carapace-b+1-2.conf",
        "carapace-b+3.conf",
    ] {
        for mut case in both(Slot::A, &["carapace-a.conf", old]) {
            case.control.arm_trial(Slot::B).unwrap();
            assert_eq!(
                case.names(),
                ["carapace-a.conf", "carapace-b+3.conf"],
                "{}",
                case.kind
            );
            assert!(
                !case.control.is_trial().unwrap(),
                "the booted slot is not the trial"
            );
        }
    }
}

#[test]
fn arm_trial_needs_an_entry() {
    for mut case in both(Slot::A, &["carapace-a.conf"]) {
        let err = case.control.arm_trial(Slot::B).unwrap_err();
        assert!(matches!(err, Error::NoEntry { slot: Slot::B, .. }), "{err}");
        assert_eq!(case.names(), ["carapace-a.conf"]);
    }
}

#[test]
fn rollback_marks_the_booted_slot_bad() {
    let cases = [
        ("carapace-b+2-1.conf", "carapace-b+0-1.conf"),
        ("carapace-b+0-3.conf", "carapace-b+0-3.conf"),
        ("carapace-b.conf", "carapace-b+0-1.conf"),
    ];
    for (booted, bad) in cases {
        for mut case in both(Slot::B, &["carapace-a.conf", booted]) {
            case.control.rollback().unwrap();
            assert_eq!(case.names(), ["carapace-a.conf", bad], "{}", case.kind);
        }
    }
}

#[test]
fn rollback_refuses_without_a_good_other_slot() {
    for mut case in both(Slot::B, &["carapace-b+2-1.conf"]) {
        let err = case.control.rollback().unwrap_err();
        assert!(matches!(err, Error::NoEntry { slot: Slot::A, .. }), "{err}");
    }
    for mut case in both(Slot::B, &["carapace-a+0-3.conf", "carapace-b+2-1.conf"]) {
        let err = case.control.rollback().unwrap_err();
        assert!(
            matches!(err, Error::NoGoodSlot { slot: Slot::A, .. }),
            "{err}"
        );
        assert_eq!(case.names(), ["carapace-a+0-3.conf", "carapace-b+2-1.conf"]);
    }
}

#[test]
fn duplicate_entries_are_refused() {
    for mut case in both(
        Slot::A,
        &["carapace-a.conf", "carapace-a+3.conf", "carapace-b.conf"],
    ) {
        assert!(matches!(
            case.control.is_trial(),
            Err(Error::DuplicateEntries { .. })
        ));
        let err = case.control.commit().unwrap_err();
        let message = err.to_string();
        assert!(message.contains("carapace-a.conf") && message.contains("carapace-a+3.conf"));
    }
}

#[test]
fn booted_slot_without_entry_is_an_error() {
    for mut case in both(Slot::A, &["carapace-b.conf"]) {
        assert!(matches!(
            case.control.is_trial(),
            Err(Error::NoEntry { slot: Slot::A, .. })
        ));
        assert!(matches!(
            case.control.commit(),
            Err(Error::NoEntry { slot: Slot::A, .. })
        ));
    }
}

#[test]
fn esp_renames_keep_content_and_leave_other_files_alone() {
    let mut case = esp(Slot::A, &["carapace-a+2-1.conf", "carapace-b.conf"]);
    case.control.commit().unwrap();
    case.control.arm_trial(Slot::B).unwrap();
    let dir = case.entries_dir();
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("carapace-a.conf"), content_of("carapace-a+2-1.conf"));
    assert_eq!(read("carapace-b+3.conf"), content_of("carapace-b.conf"));
    assert_eq!(read("other.conf"), "not ours\n");
}

#[test]
fn esp_without_entries_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let control = SystemdBoot::new(dir.path(), Slot::A);
    let err = control.is_trial().unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains(ENTRIES_DIR), "{err}");
}
