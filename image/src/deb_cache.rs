//! The content-addressed download cache: every .deb the builder fetched, named by its sha256
//! (`<cache>/debs/<sha256>.deb`) and unpacked once (`<cache>/unpacked/<sha256>/`). It is
//! shared by every checkout on the machine, so a pin that any build fetched once is served
//! again without the network, whatever the archive did since.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{rename_durably, sha256_file};

pub struct DebCache {
    debs: PathBuf,
}

impl DebCache {
    pub fn new(cache: &Path) -> Result<DebCache> {
        let debs = cache.join("debs");
        std::fs::create_dir_all(&debs).context(|| format!("create {}", debs.display()))?;
        Ok(DebCache { debs })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.debs.join(format!("{sha256}.deb"))
    }

    /// The cached file with these bytes. A file whose bytes no longer match its name (a torn
    /// copy, a flipped bit) is removed and reported as missing.
    pub fn get(&self, sha256: &str) -> Result<Option<PathBuf>> {
        if !is_sha256(sha256) {
            return Err(Error::Package(format!(
                "'{sha256}' is not a sha256; the lock file is damaged"
            )));
        }
        let path = self.path(sha256);
        if !path.exists() {
            return Ok(None);
        }
        if sha256_file(&path)? == sha256 {
            return Ok(Some(path));
        }
        std::fs::remove_file(&path).context(|| format!("remove {}", path.display()))?;
        Ok(None)
    }

    /// Moves a downloaded file into the cache after checking it has the pinned bytes.
    pub fn put(&self, downloaded: &Path, sha256: &str, what: &str) -> Result<PathBuf> {
        let actual = sha256_file(downloaded)?;
        if actual != sha256 {
            let _ = std::fs::remove_file(downloaded);
            return Err(Error::Package(format!(
                "{what} has sha256 {actual}, but the lock pins {sha256}; the download was \
                 damaged or the source serves other bytes under that version"
            )));
        }
        let path = self.path(sha256);
        rename_durably(downloaded, &path)?;
        Ok(path)
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::sha256_hex;

    #[test]
    fn serves_what_it_stored_and_forgets_damaged_copies() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DebCache::new(dir.path()).unwrap();
        let sha = sha256_hex(b"a package");
        assert!(cache.get(&sha).unwrap().is_none());

        let download = dir.path().join("download.deb");
        std::fs::write(&download, b"a package").unwrap();
        let stored = cache.put(&download, &sha, "test.deb").unwrap();
        assert_eq!(cache.get(&sha).unwrap(), Some(stored.clone()));

        std::fs::write(&stored, b"a packagf").unwrap();
        assert!(cache.get(&sha).unwrap().is_none());
        assert!(!stored.exists(), "a damaged copy is removed");
    }

    #[test]
    fn refuses_bytes_that_do_not_match_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DebCache::new(dir.path()).unwrap();
        let download = dir.path().join("download.deb");
        std::fs::write(&download, b"other bytes").unwrap();
        let err = cache
            .put(&download, &sha256_hex(b"a package"), "libc6")
            .unwrap_err()
            .to_string();
        assert!(err.contains("libc6 has sha256"), "{err}");
        assert!(!download.exists());
    }

    #[test]
    fn a_damaged_lock_entry_is_not_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DebCache::new(dir.path()).unwrap();
        assert!(cache.get("../../etc/passwd").is_err());
    }
}
