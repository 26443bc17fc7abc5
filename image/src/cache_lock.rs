//! One build at a time per cache: the cache is shared by every checkout on the machine, and
//! two builds unpacking or downloading into it at once would trip over each other's files.
//! An advisory lock on `<cache>/lock`, released when the build ends (or its process dies).

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
