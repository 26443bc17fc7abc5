//! One set of behaviour tests, run against both the ESP directory and the file-backed fake.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::transitions::EntryStore;
use super::{BootControl, FileBootControl, SystemdBoot};
use crate::boot_entry::{ENTRIES_DIR, EntryName, entry_generation, render_entry};
use crate::error::Error;
use crate::slot::Slot;

/// Both sides of a store: what the updater calls, and what the firmware sees and renames.
trait Store: BootControl + EntryStore {}
impl<T: BootControl + EntryStore> Store for T {}

struct Case {
    kind: &'static str,
    control: Box<dyn Store>,
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
    let entries: Vec<(EntryName, String)> = names
        .iter()
        .map(|n| (EntryName::parse(n).unwrap(), content_of(n)))
        .collect();
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

/// The same store, opened as the system that booted `booted` would open it.
fn reopen(kind: &'static str, dir: &Path, booted: Slot) -> Box<dyn Store> {
    match kind {
        "esp" => Box::new(SystemdBoot::new(dir, booted)),
        _ => Box::new(FileBootControl::new(state_file(dir), booted)),
    }
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

// The update cycle against systemd-boot's rules: the two functions below stand in for the
// firmware, so these tests show which slot the box would really boot.

/// systemd-boot's order (boot_entry.rs; `boot_entry_compare` in systemd's src/boot/boot.c):
/// entries with no tries left last; then, all having sort-key "carapace" and no machine-id,
/// the version newest first (our generations are plain decimal numbers, which
/// `strverscmp_improved` compares by value, as u64 does); then the id (from the file name)
/// newest first; then more tries left, then fewer tries done.
fn boot_order(entries: &[(EntryName, String)]) -> Vec<EntryName> {
    let generation = |body: &str| {
        assert!(body.contains("\nsort-key carapace\n"), "{body}");
        entry_generation(body).unwrap_or_else(|| panic!("no generation in {body}"))
    };
    let mut sorted: Vec<&(EntryName, String)> = entries.iter().collect();
    sorted.sort_by(|(a, a_body), (b, b_body)| {
        a.is_bad()
            .cmp(&b.is_bad())
            .then_with(|| generation(b_body).cmp(&generation(a_body)))
            .then_with(|| b.slot.letter().cmp(&a.slot.letter()))
            .then_with(|| b.tries_left.cmp(&a.tries_left))
            .then_with(|| a.tries_done.cmp(&b.tries_done))
    });
    sorted.into_iter().map(|(name, _)| *name).collect()
}

/// One power-on: systemd-boot boots the first entry in its order, and if that entry is
/// counting, first renames it with one try fewer and one more done
/// (`config_entry_bump_counters`; a `+0-N` entry booted because nothing else is left becomes
/// `+0-(N+1)`). Returns the slot that boots.
fn firmware_boot(store: &mut dyn Store) -> Slot {
    let entries: Vec<(EntryName, String)> = store
        .entries()
        .unwrap()
        .into_iter()
        .map(|name| (name, store.body(name).unwrap()))
        .collect();
    let first = *boot_order(&entries).first().expect("no entry to boot");
    if let Some(left) = first.tries_left {
        let counted = EntryName {
            slot: first.slot,
            tries_left: Some(left.saturating_sub(1)),
            tries_done: first.tries_done + 1,
        };
        store.rename(first, counted).unwrap();
    }
    first.slot
}

/// A freshly flashed disk as the builder writes it: slot A committed, generation 1.
struct Machine {
    kind: &'static str,
    dir: TempDir,
}

impl Machine {
    fn flashed(kind: &'static str) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let a = EntryName::committed(Slot::A);
        let body = render_entry(Slot::A, 1, "0.2.0", "quiet carapace.slot=a");
        match kind {
            "esp" => {
                let entries = dir.path().join(ENTRIES_DIR);
                fs::create_dir_all(&entries).unwrap();
                fs::write(entries.join(a.file_name()), body).unwrap();
            }
            _ => {
                FileBootControl::create(state_file(dir.path()), Slot::A, &[(a, body)]).unwrap();
            }
        }
        Machine { kind, dir }
    }

    fn both() -> [Machine; 2] {
        [Machine::flashed("esp"), Machine::flashed("fake")]
    }

    /// Boots the machine; the control the booted system opens.
    fn power_on(&self) -> (Slot, Box<dyn Store>) {
        let booted = firmware_boot(reopen(self.kind, self.dir.path(), Slot::A).as_mut());
        (booted, reopen(self.kind, self.dir.path(), booted))
    }

    fn names(&self) -> Vec<String> {
        let store = reopen(self.kind, self.dir.path(), Slot::A);
        let mut names: Vec<String> = store
            .entries()
            .unwrap()
            .iter()
            .map(EntryName::file_name)
            .collect();
        names.sort();
        names
    }

    fn body(&self, name: &str) -> String {
        let store = reopen(self.kind, self.dir.path(), Slot::A);
        store.body(EntryName::parse(name).unwrap()).unwrap()
    }

    /// What the updater does on the booted system: take the other slot out, (write its
    /// files), install it as a trial.
    fn update(&self, version: &str) -> Slot {
        let (booted, mut control) = self.power_on();
        let target = booted.other();
        control.retire(target).unwrap();
        let args = format!("quiet carapace.slot={target}");
        control.install_trial(target, version, &args).unwrap();
        target
    }
}

#[test]
fn a_uki_trial_names_only_the_slots_signed_image() {
    for machine in Machine::both() {
        let (_, mut control) = machine.power_on();
        control.retire(Slot::B).unwrap();
        control.install_uki_trial(Slot::B, "0.3.0").unwrap();
        assert_eq!(machine.names(), ["carapace-a.conf", "carapace-b+3.conf"]);
        assert_eq!(
            machine.body("carapace-b+3.conf"),
            crate::render_uki_entry(Slot::B, 2, "0.3.0")
        );
        let (booted, control) = machine.power_on();
        assert_eq!(booted, Slot::B, "{}", machine.kind);
        assert!(control.is_trial().unwrap());
    }
}

#[test]
fn an_installed_trial_boots_first_and_stays_once_committed() {
    for machine in Machine::both() {
        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::A);
        assert!(!control.is_trial().unwrap(), "a fresh disk boots no trial");
        control.retire(Slot::B).unwrap();
        control
            .install_trial(Slot::B, "0.3.0", "quiet carapace.slot=b")
            .unwrap();
        assert_eq!(machine.names(), ["carapace-a.conf", "carapace-b+3.conf"]);
        assert_eq!(
            machine.body("carapace-b+3.conf"),
            render_entry(Slot::B, 2, "0.3.0", "quiet carapace.slot=b")
        );

        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::B, "{}", machine.kind);
        assert!(control.is_trial().unwrap());
        assert_eq!(machine.names(), ["carapace-a.conf", "carapace-b+2-1.conf"]);
        control.commit().unwrap();
        for _ in 0..3 {
            let (booted, control) = machine.power_on();
            assert_eq!(booted, Slot::B, "{}", machine.kind);
            assert!(!control.is_trial().unwrap());
        }
        assert_eq!(machine.names(), ["carapace-a.conf", "carapace-b.conf"]);
    }
}

#[test]
fn a_trial_that_never_commits_falls_back_after_its_tries() {
    for machine in Machine::both() {
        machine.update("0.3.0");
        for done in 1..=3 {
            let (booted, control) = machine.power_on();
            assert_eq!(booted, Slot::B, "boot {done} ({})", machine.kind);
            assert!(control.is_trial().unwrap());
        }
        let (booted, control) = machine.power_on();
        assert_eq!(booted, Slot::A, "{}", machine.kind);
        assert!(!control.is_trial().unwrap());
        assert_eq!(machine.names(), ["carapace-a.conf", "carapace-b+0-3.conf"]);
        // The next update starts the slot afresh.
        assert_eq!(machine.update("0.3.1"), Slot::B);
        assert_eq!(machine.power_on().0, Slot::B);
    }
}

#[test]
fn a_rolled_back_trial_boots_the_other_slot_next() {
    for machine in Machine::both() {
        machine.update("0.3.0");
        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::B);
        control.rollback().unwrap();
        assert_eq!(machine.power_on().0, Slot::A, "{}", machine.kind);
    }
}

#[test]
fn a_forced_downgrade_still_boots_first() {
    for machine in Machine::both() {
        // The flashed slot A runs 0.2.0; B gets an older version.
        machine.update("0.1.0");
        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::B, "{}", machine.kind);
        assert!(
            machine
                .body("carapace-b+2-1.conf")
                .starts_with("title Carapace 0.1.0 (slot b)\nversion 2\n")
        );
        control.commit().unwrap();
        // And back again: every install is a generation above all others.
        assert_eq!(machine.update("0.0.9"), Slot::A);
        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::A, "{}", machine.kind);
        assert_eq!(
            entry_generation(&machine.body("carapace-a+2-1.conf")),
            Some(3)
        );
        control.commit().unwrap();
        assert_eq!(machine.power_on().0, Slot::A);
    }
}

#[test]
fn a_power_cut_between_retire_and_install_leaves_the_booted_slot_booting() {
    for machine in Machine::both() {
        // An update to B, committed: A (generation 1) is the slot the next update rewrites.
        machine.update("0.3.0");
        machine.power_on().1.commit().unwrap();
        let (booted, mut control) = machine.power_on();
        assert_eq!(booted, Slot::B);
        control.retire(Slot::A).unwrap();
        assert_eq!(machine.names(), ["carapace-b.conf"]);
        // The power goes while A's files are half written; no entry points at them.
        for _ in 0..3 {
            let (booted, control) = machine.power_on();
            assert_eq!(booted, Slot::B, "{}", machine.kind);
            assert!(!control.is_trial().unwrap());
        }
    }
}

#[test]
fn a_power_cut_while_the_entry_is_written_leaves_no_entry() {
    // The ESP after a cut inside install_trial's atomic write: the temporary file, no entry.
    let machine = Machine::flashed("esp");
    let (_, mut control) = machine.power_on();
    control.retire(Slot::B).unwrap();
    let entries = machine.dir.path().join(ENTRIES_DIR);
    fs::write(
        entries.join(".carapace-b+3.conf.tmp"),
        "title Carapace 0.3.0 (sl",
    )
    .unwrap();
    assert_eq!(machine.names(), ["carapace-a.conf"]);
    assert_eq!(machine.power_on().0, Slot::A);
    // The next install replaces the leftover and leaves nothing but the entry.
    control
        .install_trial(Slot::B, "0.3.0", "quiet carapace.slot=b")
        .unwrap();
    let mut files: Vec<String> = fs::read_dir(&entries)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["carapace-a.conf", "carapace-b+3.conf"]);
}

#[test]
fn the_booted_slot_is_never_retired_or_installed() {
    for machine in Machine::both() {
        let (_, mut control) = machine.power_on();
        let err = control.retire(Slot::A).unwrap_err();
        assert!(
            matches!(err, Error::BootedSlot { slot: Slot::A, .. }),
            "{err}"
        );
        let err = control
            .install_trial(Slot::A, "0.3.0", "quiet")
            .unwrap_err();
        assert!(
            matches!(err, Error::BootedSlot { slot: Slot::A, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("booted"), "{err}");
        assert_eq!(machine.names(), ["carapace-a.conf"]);
    }
}

#[test]
fn retiring_a_slot_without_an_entry_is_fine_and_removes_every_entry_it_has() {
    for mut case in both(Slot::A, &["carapace-a.conf"]) {
        case.control.retire(Slot::B).unwrap();
        assert_eq!(case.names(), ["carapace-a.conf"], "{}", case.kind);
    }
    // Two entries of B (a crash between writes of some older tool): both go.
    for mut case in both(
        Slot::A,
        &["carapace-a.conf", "carapace-b.conf", "carapace-b+0-3.conf"],
    ) {
        case.control.retire(Slot::B).unwrap();
        assert_eq!(case.names(), ["carapace-a.conf"], "{}", case.kind);
    }
}

#[test]
fn install_trial_replaces_older_entries_of_the_slot() {
    for mut case in both(
        Slot::A,
        &["carapace-a.conf", "carapace-b.conf", "carapace-b+0-3.conf"],
    ) {
        case.control
            .install_trial(Slot::B, "0.3.0", "quiet carapace.slot=b")
            .unwrap();
        assert_eq!(
            case.names(),
            ["carapace-a.conf", "carapace-b+3.conf"],
            "{}",
            case.kind
        );
        // The test bodies carry no generation: the new one is 1.
        let body = case.control.body(EntryName::trial(Slot::B, 3)).unwrap();
        assert_eq!(entry_generation(&body), Some(1), "{body}");
    }
}

#[test]
fn install_trial_refuses_text_that_would_break_the_entry() {
    for machine in Machine::both() {
        let (_, mut control) = machine.power_on();
        for (version, args) in [
            ("0.3.0\noptions init=/bin/sh", "quiet"),
            ("0.3.0", "quiet\ninitrd /evil"),
            ("", "quiet"),
            ("0.3.0", ""),
        ] {
            let err = control.install_trial(Slot::B, version, args).unwrap_err();
            assert!(matches!(err, Error::BadEntryValue { .. }), "{err}");
        }
        assert_eq!(machine.names(), ["carapace-a.conf"]);
    }
}
