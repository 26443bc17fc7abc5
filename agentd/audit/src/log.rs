//! Appending to the log on the box. Opening reads only the last line (a start must stay cheap
//! however long the log is); `verify` reads it all when someone asks.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};

use crate::{Entry, Error, KEY_KIND, line_hash};

/// The longest line `open` looks back for; entries are a few hundred bytes.
const TAIL_MAX: u64 = 64 * 1024;

pub struct AuditLog {
    path: PathBuf,
    file: File,
    key: SigningKey,
    next_seq: u64,
    last_hash: String,
}

impl AuditLog {
    /// Opens the log at `path`, or starts one whose line 0 declares `key`'s public half. A
    /// last line cut short by a power cut is dropped (it was never acknowledged to anyone); a
    /// log whose last line is not ours is an error, and nothing is changed.
    pub fn open(path: &Path, key: SigningKey, now: u64) -> Result<AuditLog, Error> {
        let io = |action| {
            let path = path.display().to_string();
            move |source| Error::Io {
                path,
                action,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io("open"))?;
        let length = file.metadata().map_err(io("inspect"))?.len();
        let start = length.saturating_sub(TAIL_MAX);
        file.seek(SeekFrom::Start(start)).map_err(io("seek"))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(io("read"))?;
        // Everything after the last newline is a torn write.
        let complete = tail
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |at| at + 1);
        if complete < tail.len() {
            file.set_len(start + complete as u64)
                .map_err(io("drop the torn last line of"))?;
            file.sync_all().map_err(io("sync"))?;
        }
        let body = &tail[..complete];
        let last_line = body
            .strip_suffix(b"\n")
            .and_then(|lines| lines.split(|&byte| byte == b'\n').next_back());
        let mut log = AuditLog {
            path: path.to_owned(),
            file,
            key,
            next_seq: 0,
            last_hash: String::new(),
        };
        match last_line {
            None if start == 0 => {
                let public = hex::encode(log.key.verifying_key().as_bytes());
                log.append(KEY_KIND, &public, now)?;
            }
            None => {
                return Err(Error::Broken {
                    path: path.display().to_string(),
                    line: 0,
                    reason: format!("its last line is longer than {TAIL_MAX} bytes"),
                });
            }
            Some(line) => {
                let entry: Entry = serde_json::from_slice(line).map_err(|error| Error::Broken {
                    path: path.display().to_string(),
                    line: 0,
                    reason: format!("its last line is not an audit entry: {error}"),
                })?;
                log.next_seq = entry.seq + 1;
                log.last_hash = line_hash(line);
            }
        }
        Ok(log)
    }

    /// Appends one signed entry and waits until it is on disk.
    pub fn append(&mut self, kind: &str, detail: &str, now: u64) -> Result<Entry, Error> {
        let mut entry = Entry {
            seq: self.next_seq,
            time: now,
            kind: kind.into(),
            detail: detail.into(),
            prev: self.last_hash.clone(),
            sig: String::new(),
        };
        entry.sig = hex::encode(self.key.sign(&entry.signed_bytes()).to_bytes());
        let line = serde_json::to_vec(&entry).unwrap_or_default();
        let mut framed = line.clone();
        framed.push(b'\n');
        let io = |action| {
            let path = self.path.display().to_string();
            move |source| Error::Io {
                path,
                action,
                source,
            }
        };
        self.file.write_all(&framed).map_err(io("append to"))?;
        self.file.sync_data().map_err(io("sync"))?;
        self.next_seq += 1;
        self.last_hash = line_hash(&line);
        Ok(entry)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the log holds.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    #[test]
    fn a_log_verifies_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path, key(), 100).unwrap();
        log.append("pairing", "owner telegram:42", 101).unwrap();
        drop(log);
        let mut log = AuditLog::open(&path, key(), 102).unwrap();
        log.append("tool", "device_status {}", 103).unwrap();
        let report = verify(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(report.entries.len(), 3);
        assert_eq!(report.key, hex::encode(key().verifying_key().as_bytes()));
        assert_eq!(report.entries[2].detail, "device_status {}");
    }

    #[test]
    fn a_changed_line_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path, key(), 100).unwrap();
        log.append("pairing", "owner telegram:42", 101).unwrap();
        log.append("tool", "reboot", 102).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replace("telegram:42", "telegram:66");
        let failure = verify(tampered.as_bytes()).unwrap_err();
        assert_eq!(failure.line, 2);
        assert!(failure.reason.contains("signature"), "{failure}");
        // Removing a line breaks the sequence.
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        let failure = verify(removed.as_bytes()).unwrap_err();
        assert_eq!(failure.line, 2);
        assert!(failure.reason.contains("sequence"), "{failure}");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path, key(), 100).unwrap();
        log.append("pairing", "owner", 101).unwrap();
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":2,\"ti").unwrap();
        drop(file);
        let mut log = AuditLog::open(&path, key(), 102).unwrap();
        log.append("tool", "after the cut", 103).unwrap();
        let report = verify(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(report.entries.len(), 3);
    }

    #[test]
    fn a_foreign_last_line_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "hello\n").unwrap();
        let error = AuditLog::open(&path, key(), 100).err().unwrap();
        assert!(error.to_string().contains("not an audit entry"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    }
}
