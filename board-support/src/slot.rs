//! The two root file system slots.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One of the two root file system slots; an update writes the slot that is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// The lower-case letter used in file names and on the kernel command line.
    pub fn letter(self) -> char {
        match self {
            Slot::A => 'a',
            Slot::B => 'b',
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The GPT partition name the image builder gives this slot's root partition.
    pub const fn partition_name(self) -> &'static str {
        match self {
            Slot::A => "root-a",
            Slot::B => "root-b",
        }
    }

    /// The GPT name of this slot's own FAT boot partition, on boards whose firmware boots a
    /// partition per slot (the Raspberry Pi 5); UEFI boards keep both slots' files on the ESP.
    pub const fn boot_partition_name(self) -> &'static str {
        match self {
            Slot::A => "boot-a",
            Slot::B => "boot-b",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl FromStr for Slot {
    type Err = Error;

    fn from_str(s: &str) -> Result<Slot, Error> {
        match s {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(Error::BadSlot {
                value: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_names() {
        assert_eq!(Slot::A.letter(), 'a');
        assert_eq!(Slot::B.letter(), 'b');
        assert_eq!(Slot::A.partition_name(), "root-a");
        assert_eq!(Slot::B.partition_name(), "root-b");
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::B.other(), Slot::A);
    }

    #[test]
    fn display_parses_back() {
        for slot in [Slot::A, Slot::B] {
            assert_eq!(slot.to_string().parse::<Slot>().ok(), Some(slot));
        }
    }

    #[test]
    fn bad_slot_names_the_value() {
        for bad in ["A", "c", "", " a", "ab"] {
            let err = bad.parse::<Slot>().unwrap_err();
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn serde_uses_the_letter() {
        assert_eq!(serde_json::to_string(&Slot::B).unwrap(), "\"b\"");
        assert_eq!(serde_json::from_str::<Slot>("\"a\"").unwrap(), Slot::A);
    }
}
