//! File helpers: atomic writes (write, fsync, rename, fsync the directory) and sha256.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let ctx = || format!("write {}", path.display());
    let mut file = std::fs::File::create(&tmp).context(ctx)?;
    file.write_all(data).context(ctx)?;
    file.sync_all().context(ctx)?;
    drop(file);
    rename_durably(&tmp, path)
}

/// Renames and then fsyncs the directory, so the new name survives a crash.
pub fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .context(|| format!("rename {} to {}", from.display(), to.display()))?;
    let dir = to.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("fsync {}", dir.display()))
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
