//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use crate::slot::Slot;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown slot '{value}': a slot is 'a' or 'b'")]
    BadSlot { value: String },

    #[error(
        "kernel command line has no {name}= parameter; the slot's boot loader entry must set it \
         (docs/boot-contract.md lists the parameters)"
    )]
    MissingParam { name: &'static str },

    #[error(
        "kernel command line parameter {name} appears more than once; the boot loader entry \
         must set it exactly once"
    )]
    DuplicateParam { name: &'static str },

    #[error(
        "kernel command line parameter {name}={value} is invalid: {reason}; fix the slot's \
         boot loader entry"
    )]
    BadParam {
        name: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "slot {slot} has no boot loader entry in {}; install the slot (kernel, initrd and \
         entry) before using it",
        .location.display()
    )]
    NoEntry { slot: Slot, location: PathBuf },

    #[error(
        "slot {slot} has more than one boot loader entry in {} ({}); delete all but the one \
         the slot should boot",
        .location.display(),
        .names.join(", ")
    )]
    DuplicateEntries {
        slot: Slot,
        location: PathBuf,
        names: Vec<String>,
    },

    #[error(
        "cannot roll back: the other slot {slot} is marked bad too ({name}), so the bad slot \
         would boot again; write a working image to slot {slot} and arm a trial of it instead"
    )]
    NoGoodSlot { slot: Slot, name: String },

    #[error("service table: {message}")]
    ServiceTableSyntax { message: String },

    #[error("service table: service {service}: field `{field}`: {problem}")]
    ServiceField {
        service: String,
        field: &'static str,
        problem: String,
    },

    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "boot state file {} is corrupt: {reason}; recreate it with FileBootControl::create",
        .path.display()
    )]
    CorruptState { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
