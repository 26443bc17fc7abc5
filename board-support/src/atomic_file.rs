//! Crash-safe file replacement: after a power cut the file holds either its old or its new
//! contents, never a mix and never nothing.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents`: writes a temporary file next to it, fsyncs it, renames it
/// over `path` and makes the rename durable (`rename_durably`).
///
/// The new file is created with `mode` (narrowed by the umask), so a secret is never readable
/// by others, not even for a moment.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let (dir, tmp) = temp_path_for(path)?;
    remove_if_present(&tmp)?;
    let written = write_synced(&tmp, contents, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(err) = written {
        // The temporary file is ours and useless now; the error that matters is `err`.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    sync_renamed(path, &dir)
}

/// Renames `from` to `to` (in one directory) so that a power cut leaves one or the other.
///
/// The file is fsynced under its new name as well as the directory: on vfat (the ESP) a
/// rename writes the new directory entry with no size and no first cluster, and the file's
/// real ones reach it only when the file's inode is written back. A directory fsync alone
/// left `carapace-b.conf` empty after a power cut in QEMU (an empty entry systemd-boot skips).
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let dir = match to.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    sync_renamed(to, &dir)
}

fn sync_renamed(path: &Path, dir: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    sync_dir(dir)
}

/// Flushes a directory's entries (renames, creations) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The temporary file sits in the same directory because rename(2) is only atomic within one
/// file system.
fn temp_path_for(path: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    Ok((dir, tmp))
}

/// A temporary file left by a crash would make `create_new` fail forever.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn write_synced(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file is left behind");
    }

    #[test]
    fn applies_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write(&path, b"x", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn survives_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker");
        fs::write(dir.path().join(".marker.tmp"), b"half").unwrap();
        write(&path, b"whole", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!dir.path().join(".marker.tmp").exists());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("file");
        assert_eq!(
            write(&path, b"x", 0o600).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
