//! One builder at a time in a folder: the cache, which every checkout on the machine shares
//! (two builds downloading or unpacking into it at once would trip over each other's files;
//! what is unpacked is complete before it gets its name and is never changed, so reading it
//! needs no lock), and a recipe's out/ folder. An advisory lock on `<folder>/lock`, released
//! when the guard is dropped (or its process dies).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{IoContext, Result};

pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    pub fn acquire(cache: &Path) -> Result<CacheLock> {
        std::fs::create_dir_all(cache).context(|| format!("create {}", cache.display()))?;
        let path = cache.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .context(|| format!("open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!(
                    "carapace: waiting for another build that uses {}",
                    cache.display()
                );
                file.lock().context(|| format!("lock {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).context(|| format!("lock {}", path.display()));
            }
        }
        Ok(CacheLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = CacheLock::acquire(dir.path()).unwrap();
        let other = File::options()
            .write(true)
            .open(dir.path().join("lock"))
            .unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(first);
        other.try_lock().unwrap();
    }
}
