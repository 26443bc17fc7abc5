//! File helpers: atomic writes and durable renames (on board-support's), sha256, and reading a
//! sparse file without reading its holes.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// Write, fsync, rename, fsync the directory: board-support's crash-safe replacement.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    board_support::atomic_file::write(path, data, 0o644)
        .context(|| format!("write {}", path.display()))
}

/// Renames and then fsyncs the directory, so the new name survives a crash.
pub fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .context(|| format!("rename {} to {}", from.display(), to.display()))?;
    let dir = to
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    board_support::atomic_file::sync_dir(dir).context(|| format!("fsync {}", dir.display()))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).context(|| format!("read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The byte ranges of `file` that hold data (SEEK_DATA / SEEK_HOLE), in order; the rest of its
/// length reads as zeros. A file system that does not track holes gives one range: the whole.
pub fn data_ranges(file: &std::fs::File) -> std::io::Result<Vec<std::ops::Range<u64>>> {
    use rustix::fs::{SeekFrom, seek};
    let len = file.metadata()?.len();
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < len {
        let start = match seek(file, SeekFrom::Data(at)) {
            Ok(start) => start,
            // ENXIO: no data after `at`.
            Err(rustix::io::Errno::NXIO) => break,
            Err(error) => return Err(error.into()),
        };
        let end = seek(file, SeekFrom::Hole(start))?.min(len);
        ranges.push(start..end);
        at = end;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_ranges_skip_the_holes_of_a_sparse_file() {
        use std::os::unix::fs::FileExt;
        let file = tempfile::tempfile().unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(&[7; 4096], 8 << 20).unwrap();
        file.write_all_at(&[9; 4096], 32 << 20).unwrap();
        let ranges = data_ranges(&file).unwrap();
        let held: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        assert!(ranges.iter().any(|r| r.contains(&(8 << 20))), "{ranges:?}");
        assert!(ranges.iter().any(|r| r.contains(&(32 << 20))), "{ranges:?}");
        // tmpfs and ext4 track holes to the page or block.
        assert!(held < 1 << 20, "{ranges:?}");
        assert!(
            data_ranges(&tempfile::tempfile().unwrap())
                .unwrap()
                .is_empty()
        );
    }
}
