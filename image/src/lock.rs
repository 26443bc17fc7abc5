//! The lock file next to a recipe pins every Debian package by name, version, suite and sha256,
//! so a rebuild fetches the same bytes, and records when the archive was seen serving each
//! version, so the Debian snapshot archive can serve it after the archive moved on. It is read
//! on every build and written (atomically) only when a pin changes.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The release; its -updates and -security suites are read with it.
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
    /// The suite whose signed index served it, e.g. "trixie-security". Empty in locks
    /// written before suites were recorded; filled in when the mirror serves the pin.
    #[serde(default)]
    pub suite: String,
    pub sha256: String,
    /// When the archive was seen serving this version (UTC, the snapshot archive's
    /// YYYYMMDDTHHMMSSZ), so snapshot.debian.org can serve it later. Empty in old locks.
    #[serde(default)]
    pub seen: String,
}

/// Why a pin moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// No source (cache, mirror, snapshot) serves the pinned version any more.
    Dropped,
    /// `carapace lock --update` asked for the archive's current version.
    Updated,
    /// The recipe asks for a package the lock did not pin.
    Added,
    /// The recipe no longer asks for a pinned package.
    Removed,
}

/// One line of the table a build or `carapace lock` prints when pins move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinChange {
    pub requested: String,
    /// (name, version) before; `None` for an added package.
    pub from: Option<(String, String)>,
    /// (name, version) after; `None` for a removed package.
    pub to: Option<(String, String)>,
    pub reason: ChangeReason,
}

impl fmt::Display for PinChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The package name is shown once, unless a metapackage now resolves to another one
        // (a kernel ABI bump moves linux-image-amd64 to a new linux-image-* package).
        let side = |pin: &Option<(String, String)>| match pin {
            None => "(none)".to_string(),
            Some((name, version)) if *name == self.requested => version.clone(),
            Some((name, version)) => format!("{name} {version}"),
        };
        let why = match self.reason {
            ChangeReason::Dropped => "the archive dropped the pinned version",
            ChangeReason::Updated => "updated on request",
            ChangeReason::Added => "new in the recipe",
            ChangeReason::Removed => "no longer in the recipe",
        };
        write!(
            f,
            "{} {} -> {} ({why})",
            self.requested,
            side(&self.from),
            side(&self.to)
        )
    }
}

impl LockedPackage {
    pub fn pin(&self) -> (String, String) {
        (self.name.clone(), self.version.clone())
    }
}

impl Lock {
    pub fn new(suite: &str, architecture: &str) -> Lock {
        Lock {
            suite: suite.into(),
            architecture: architecture.into(),
            packages: Vec::new(),
        }
    }

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
            message: format!(
                "{e}; repair it, or delete it and run `carapace lock` to pin the archive's \
                 current versions"
            ),
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self).map_err(|e| Error::Lock {
            path: path.into(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# Pins the recipe's Debian packages. `carapace build` keeps it working as the archive\n\
             # moves on (and refuses to with --locked); `carapace lock --update` moves pins on purpose.\n\n{body}"
        );
        write_atomic(path, text.as_bytes())
    }

    pub fn find(&self, requested: &str) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.requested == requested)
    }
}

/// The UTC time `unix_seconds` in the snapshot archive's form, YYYYMMDDTHHMMSSZ.
pub fn snapshot_timestamp(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar), after
    // H. Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn now_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    snapshot_timestamp(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libc(version: &str) -> LockedPackage {
        LockedPackage {
            requested: "libc6".into(),
            name: "libc6".into(),
            version: version.into(),
            architecture: "amd64".into(),
            suite: "trixie-security".into(),
            sha256: "00".into(),
            seen: "20261121T000000Z".into(),
        }
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        let mut lock = Lock::new("trixie", "amd64");
        lock.packages.push(libc("2.41-12+deb13u4"));
        lock.write(&path).unwrap();
        let back = Lock::read(&path).unwrap().unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.find("libc6").unwrap().version, "2.41-12+deb13u4");
        assert!(back.find("e2fsprogs").is_none());
        assert!(Lock::read(&dir.path().join("missing")).unwrap().is_none());
    }

    #[test]
    fn corrupt_lock_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        std::fs::write(&path, "suite = 3").unwrap();
        let message = Lock::read(&path).unwrap_err().to_string();
        assert!(message.contains("carapace lock"), "{message}");
    }

    #[test]
    fn a_change_reads_as_one_line() {
        let dropped = PinChange {
            requested: "libc6".into(),
            from: Some(libc("2.41-12+deb13u4").pin()),
            to: Some(libc("2.41-12+deb13u5").pin()),
            reason: ChangeReason::Dropped,
        };
        assert_eq!(
            dropped.to_string(),
            "libc6 2.41-12+deb13u4 -> 2.41-12+deb13u5 (the archive dropped the pinned version)"
        );
        let kernel = PinChange {
            requested: "linux-image-amd64".into(),
            from: Some((
                "linux-image-6.12.107+deb13-amd64".into(),
                "6.12.107-1".into(),
            )),
            to: Some((
                "linux-image-6.12.110+deb13-amd64".into(),
                "6.12.110-1".into(),
            )),
            reason: ChangeReason::Updated,
        };
        assert_eq!(
            kernel.to_string(),
            "linux-image-amd64 linux-image-6.12.107+deb13-amd64 6.12.107-1 -> \
             linux-image-6.12.110+deb13-amd64 6.12.110-1 (updated on request)"
        );
        let added = PinChange {
            requested: "e2fsprogs".into(),
            from: None,
            to: Some(("e2fsprogs".into(), "1.47.2-3+b12".into())),
            reason: ChangeReason::Added,
        };
        assert_eq!(
            added.to_string(),
            "e2fsprogs (none) -> 1.47.2-3+b12 (new in the recipe)"
        );
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(snapshot_timestamp(0), "19700101T000000Z");
        // 2026-11-30 04:35:45 UTC
        assert_eq!(snapshot_timestamp(1_796_013_345), "20261130T043545Z");
        // A leap day.
        assert_eq!(snapshot_timestamp(951_782_400), "20000229T000000Z");
    }
}
