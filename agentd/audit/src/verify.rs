//! Checks a whole log: every line parses, counts up from 0, names the hash of the line before
//! and carries a valid signature by the key that line 0 declares.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::{Entry, KEY_KIND, line_hash};

/// What a log that verifies holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The signing key (hex) from line 0.
    pub key: String,
    pub entries: Vec<Entry>,
    /// The hash of the last line: note it down, and a later copy must contain it.
    pub last_hash: String,
}

/// The first line that does not verify, counted from 1, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct Failure {
    pub line: usize,
    pub reason: String,
}

pub fn verify(log: &[u8]) -> Result<Report, Failure> {
    let mut key: Option<(String, VerifyingKey)> = None;
    let mut entries = Vec::new();
    let mut prev_hash = String::new();
    let lines = log
        .strip_suffix(b"\n")
        .unwrap_or(log)
        .split(|&byte| byte == b'\n');
    for (index, line) in lines.enumerate() {
        let fail = |reason: String| Failure {
            line: index + 1,
            reason,
        };
        if line.is_empty() && index == 0 && log.is_empty() {
            break;
        }
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|error| fail(format!("not an audit entry: {error}")))?;
        if entry.seq != index as u64 {
            return Err(fail(format!(
                "sequence number {} where {index} belongs (a line was removed or inserted)",
                entry.seq
            )));
        }
        if entry.prev != prev_hash {
            return Err(fail(
                "it does not name the hash of the line before it (that line was changed, or \
                 lines were removed)"
                    .into(),
            ));
        }
        if index == 0 {
            if entry.kind != KEY_KIND {
                return Err(fail(format!(
                    "the first line must declare the key, not be a {:?} entry",
                    entry.kind
                )));
            }
            key = Some((
                entry.detail.clone(),
                parse_key(&entry.detail).map_err(fail)?,
            ));
        }
        let Some((_, verifying)) = &key else {
            return Err(fail("no key line".into()));
        };
        let signature = hex::decode(&entry.sig)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| fail("the signature is not 64 bytes of hex".into()))?;
        verifying
            .verify(&entry.signed_bytes(), &signature)
            .map_err(|_| fail("the signature does not match (the line was changed)".into()))?;
        prev_hash = line_hash(line);
        entries.push(entry);
    }
    let Some((key, _)) = key else {
        return Err(Failure {
            line: 1,
            reason: "the log is empty".into(),
        });
    };
    Ok(Report {
        key,
        entries,
        last_hash: prev_hash,
    })
}

fn parse_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("the key line does not hold 32 bytes of hex")?;
    VerifyingKey::from_bytes(&bytes).map_err(|error| format!("the key line's key: {error}"))
}
