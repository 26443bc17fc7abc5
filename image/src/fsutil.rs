//! File helpers: atomic writes and durable renames (on board-support's), and sha256.

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
