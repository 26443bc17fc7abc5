//! console.log plus one rotated generation, console.log.1: the log never takes more than
//! twice [`ROTATE_BYTES`] of /data, whatever the box prints.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const ROTATE_BYTES: u64 = 1024 * 1024;
pub const FILE_NAME: &str = "console.log";
pub const ROTATED_FILE_NAME: &str = "console.log.1";

pub struct RotatingLog {
    dir: PathBuf,
    file: Option<File>,
    size: u64,
}

impl RotatingLog {
    pub fn open(dir: &Path) -> Result<RotatingLog> {
        let path = dir.join(FILE_NAME);
        let file = open_append(&path).map_err(|source| Error::Io {
            what: format!("open {}", path.display()),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingLog {
            dir: dir.to_owned(),
            file: Some(file),
            size,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Appends `text` (whole lines); rotates first when it would pass [`ROTATE_BYTES`]. A
    /// full /data loses these lines, not the logger: the next append tries again.
    pub fn append(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.size > 0 && self.size + text.len() as u64 > ROTATE_BYTES {
            self.rotate();
        }
        if self.file.is_none() {
            self.file = open_append(&self.path()).ok();
        }
        let Some(file) = &mut self.file else { return };
        if file.write_all(text.as_bytes()).is_ok() {
            self.size += text.len() as u64;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let _ = fs::rename(self.path(), self.dir.join(ROTATED_FILE_NAME));
        self.size = 0;
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_one_mib_and_keeps_one_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = RotatingLog::open(dir.path()).expect("open");
        let line = format!("{}\n", "y".repeat(1023));
        for _ in 0..1024 {
            log.append(&line);
        }
        assert!(!dir.path().join(ROTATED_FILE_NAME).exists());
        log.append("first line of the new file\n");
        let rotated = fs::metadata(dir.path().join(ROTATED_FILE_NAME)).expect("rotated");
        assert_eq!(rotated.len(), ROTATE_BYTES);
        let current = fs::read_to_string(dir.path().join(FILE_NAME)).expect("current");
        assert_eq!(current, "first line of the new file\n");
        for _ in 0..3000 {
            log.append(&line);
        }
        let total: u64 = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").metadata().expect("meta").len())
            .sum();
        assert!(total <= 2 * ROTATE_BYTES, "{total}");
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 2);
    }

    #[test]
    fn appends_to_the_log_of_the_previous_boot() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE_NAME), "old\n").expect("write");
        let mut log = RotatingLog::open(dir.path()).expect("open");
        log.append("new\n");
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        assert_eq!(text, "old\nnew\n");
        assert_eq!(log.size, 8);
    }
}
