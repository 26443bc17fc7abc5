//! The one error type of the disk helper; each variant names the step that failed and maps
//! to the reason PID 1 reports when /data comes up degraded.

use std::io;
use std::path::PathBuf;

use board_support::DegradedReason;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("find the data partition: {0}")]
    NotFound(board_support::Error),

    #[error("find the slots' root partitions: {0}")]
    SlotPartition(board_support::Error),

    #[error("read the GPT of {disk}: {source}")]
    Table {
        disk: String,
        #[source]
        source: board_support::Error,
    },

    #[error("rewrite the GPT of {disk} ({step}): {source}")]
    TableWrite {
        disk: String,
        step: &'static str,
        #[source]
        source: board_support::Error,
    },

    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{program} {} failed (exit {code}): {says}", .device.display())]
    Tool {
        program: &'static str,
        device: PathBuf,
        code: i32,
        says: String,
    },

    #[error("load the trial slot for kexec: {0}")]
    KexecTrial(String),

    #[error("the TPM: {0}")]
    Tpm(#[from] carapace_tpm::Error),

    #[error("random bytes for /data's key: {0}")]
    Random(String),

    /// /data is encrypted and this boot cannot have its key; nothing was changed.
    #[error("/data is encrypted and its key stays sealed: {why}; nothing on it was changed")]
    Locked { why: String },

    #[error("{} has no usable ext4 and e2fsck could not repair it: {detail}", .device.display())]
    Unrepairable { device: PathBuf, detail: String },
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub fn reason(&self) -> DegradedReason {
        match self {
            Error::NotFound(_) => DegradedReason::NotFound,
            Error::Unrepairable { .. } => DegradedReason::Unrepairable,
            Error::Locked { .. } => DegradedReason::Locked,
            Error::Tool {
                program: "mke2fs", ..
            } => DegradedReason::FormatFailed,
            _ => DegradedReason::HelperFailed,
        }
    }
}
