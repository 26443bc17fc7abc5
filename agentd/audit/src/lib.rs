//! The audit log: what the agent did (tool calls, settings changes, pairing events, update
//! decisions), one JSON object per line, each line naming the SHA-256 of the line before it
//! and signed with the device's ed25519 key. Editing, inserting or removing a line anywhere
//! but at the end breaks the chain or a signature; `verify` says which line.
//!
//! ```text
//! {"seq":0,"time":1764500000,"kind":"key","detail":"<public key hex>","prev":"","sig":"…"}
//! {"seq":1,"time":1764500012,"kind":"pairing","detail":"owner telegram:42","prev":"<sha256 of line 0>","sig":"…"}
//! ```
//! Line 0 names the key that signs the rest; a verifier compares it with the key the box shows
//! (`/status`, the console's identity line). `sig` covers the line's JSON without `sig`, in the
//! field order above.

mod log;
mod verify;

pub use log::AuditLog;
pub use verify::{Report, verify};

use serde::{Deserialize, Serialize};

/// The kind of line 0, whose detail is the signing key.
pub const KEY_KIND: &str = "key";

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Seconds since 1970 (the box's clock, which netd keeps).
    pub time: u64,
    /// `key`, `pairing`, `tool`, `settings`, `update`, `audit`…
    pub kind: String,
    /// What happened, in words; never a secret.
    pub detail: String,
    /// Hex SHA-256 of the previous line's bytes (without its newline); empty on line 0.
    pub prev: String,
    /// Hex ed25519 signature of [`Entry::signed_bytes`].
    pub sig: String,
}

/// The fields a signature covers, in order.
#[derive(Serialize)]
struct Signed<'a> {
    seq: u64,
    time: u64,
    kind: &'a str,
    detail: &'a str,
    prev: &'a str,
}

impl Entry {
    pub fn signed_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(&Signed {
            seq: self.seq,
            time: self.time,
            kind: &self.kind,
            detail: &self.detail,
            prev: &self.prev,
        })
        .unwrap_or_default()
    }
}

/// Hex SHA-256 of one line's bytes.
pub fn line_hash(line: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(line))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("audit log {path}: {action}: {source}")]
    Io {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "audit log {path} does not continue the chain at line {line}: {reason}; keep the file \
         for inspection (`carapace audit verify`) and move it aside to start a new log"
    )]
    Broken {
        path: String,
        line: usize,
        reason: String,
    },
}
