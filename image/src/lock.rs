//! The lock file next to a recipe pins every Debian package by name, version and sha256, so a
//! rebuild fetches the same bytes. It is written once (atomically) and read on every build.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub suite: String,
    pub architecture: String,
    #[serde(rename = "package")]
    pub packages: Vec<LockedPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// What the recipe or board asked for (a metapackage resolves to a versioned name).
    pub requested: String,
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub sha256: String,
}

impl Lock {
    pub fn read(path: &Path) -> Result<Option<Lock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Lock {
                    path: path.into(),
                    message: e.to_string(),
                });
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| Error::Lock {
            path: path.into(),
            message: format!("{e}; delete it to resolve the packages again"),
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self).map_err(|e| Error::Lock {
            path: path.into(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Pins the recipe's Debian packages. Written by `carapace build` when missing or when\n\
             # the recipe's package list changes; delete it to move to the archive's current versions.\n\n{body}"
        );
        write_atomic(path, text.as_bytes())
    }

    /// True when this lock pins exactly the packages asked for, from the same suite.
    pub fn covers(&self, suite: &str, arch: &str, requested: &[String]) -> bool {
        let mut pinned: Vec<&str> = self.packages.iter().map(|p| p.requested.as_str()).collect();
        let mut wanted: Vec<&str> = requested.iter().map(String::as_str).collect();
        pinned.sort_unstable();
        wanted.sort_unstable();
        self.suite == suite && self.architecture == arch && pinned == wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        let lock = Lock {
            suite: "trixie".into(),
            architecture: "amd64".into(),
            packages: vec![LockedPackage {
                requested: "linux-image-amd64".into(),
                name: "linux-image-6.12.107+deb13-amd64".into(),
                version: "6.12.107-1".into(),
                architecture: "amd64".into(),
                sha256: "00".into(),
            }],
        };
        lock.write(&path).unwrap();
        let back = Lock::read(&path).unwrap().unwrap();
        assert_eq!(back, lock);
        assert!(back.covers("trixie", "amd64", &["linux-image-amd64".into()]));
        assert!(!back.covers("trixie", "amd64", &["e2fsprogs".into()]));
        assert!(Lock::read(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn corrupt_lock_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        std::fs::write(&path, "suite = 3").unwrap();
        assert!(
            Lock::read(&path)
                .unwrap_err()
                .to_string()
                .contains("delete it")
        );
    }
}
