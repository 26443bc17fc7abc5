//! What the update service keeps on /data (`/data/updated/state.json`): loaded once at start,
//! changed in memory, written whole (write, fsync, rename) after every change, so a power cut
//! leaves either the state before a step or the state after it.
//!
//! The slot switch itself is decided by the boot entries on the ESP, never by this file: the
//! file only remembers what was asked for (to tell the owner how it ended) and what the box
//! has seen (the highest channel serial, so an old pointer served again is a replay).

use std::path::{Path, PathBuf};

use board_support::Slot;
use board_support::update_control::{Event, MAX_EVENTS};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The highest serial of the followed channel this box accepted.
    pub pointer_serial: Option<u64>,
    /// A slot written and armed for a trial boot, from arming until its commit or rollback.
    pub trial: Option<Trial>,
    /// The newest events for the owner, oldest first.
    pub events: Vec<Event>,
    pub next_event: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub version: String,
    pub slot: Slot,
    pub from_version: String,
    /// The boot that armed it (/proc/sys/kernel/random/boot_id): while this boot lasts the
    /// trial has not started; in a later boot of the old slot it has failed.
    pub armed_in_boot: String,
    /// agentd's IM link was connected when the update was armed: the new slot must connect it
    /// again before it is committed.
    pub im_was_connected: bool,
    /// Boots of the new slot so far that did not end in a commit.
    pub boots: u32,
}

impl State {
    /// The state at `dir/state.json`; a missing file is a fresh state. A file that does not
    /// parse is moved aside (kept for a person to look at) and the state starts fresh: the
    /// boot entries, not this file, decide which slot runs.
    pub fn load(dir: &Path) -> (State, Option<Error>) {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return (State::default(), None);
            }
            Err(err) => return (State::default(), Some(Error::io("read", &path)(err))),
        };
        match serde_json::from_slice(&text) {
            Ok(state) => (state, None),
            Err(err) => {
                let _ = std::fs::rename(&path, bad_path(&path));
                let reason = err.to_string();
                (State::default(), Some(Error::State { path, reason }))
            }
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        board_support::atomic_file::write(&path, &text, 0o600).map_err(Error::io("write", path))
    }

    /// Adds an event for the owner (and the console), keeping the newest [`MAX_EVENTS`].
    pub fn event(&mut self, text: String) {
        println!("update: {text}");
        self.next_event += 1;
        self.events.push(Event {
            seq: self.next_event,
            text,
        });
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }
}

fn bad_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bad");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State {
            pointer_serial: Some(7),
            trial: Some(Trial {
                version: "0.2.0".into(),
                slot: Slot::B,
                from_version: "0.1.0".into(),
                armed_in_boot: "boot-1".into(),
                im_was_connected: true,
                boots: 1,
            }),
            ..State::default()
        };
        state.event("0.2.0 is ready".into());
        state.save(dir.path()).unwrap();
        let (loaded, problem) = State::load(dir.path());
        assert!(problem.is_none());
        assert_eq!(loaded, state);
    }

    #[test]
    fn events_keep_the_newest_and_count_on() {
        let mut state = State::default();
        for n in 0..(MAX_EVENTS + 3) {
            state.event(format!("event {n}"));
        }
        assert_eq!(state.events.len(), MAX_EVENTS);
        assert_eq!(state.events[0].text, "event 3");
        assert_eq!(state.events.last().unwrap().seq, (MAX_EVENTS + 3) as u64);
    }

    #[test]
    fn a_garbled_file_is_kept_aside_and_the_state_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{\"trial\": 12").unwrap();
        let (state, problem) = State::load(dir.path());
        assert_eq!(state, State::default());
        assert!(matches!(problem, Some(Error::State { .. })), "{problem:?}");
        assert!(dir.path().join("state.json.bad").exists());
        let (_, problem) = State::load(dir.path());
        assert!(problem.is_none(), "the bad file is out of the way");
    }
}
