//! Debian packages through apt, under a private configuration inside the build cache: its own
//! sources list, state, cache and architecture. The host's apt sources and root are never
//! touched. apt checks the archive's signatures (InRelease against debian-archive-keyring) and
//! each .deb against the signed index; we check the .deb again against the lock file's sha256.
//!
//! A suite is read together with its -updates and -security suites, so the kernel and glibc
//! carry Debian's point releases and security fixes. The same sources can be read as the
//! Debian snapshot archive saw them at one moment, to fetch a version the archive dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::tools;

/// Overridden by CARAPACE_DEBIAN_MIRROR (a local or nearer mirror of the main archive).
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Overridden by CARAPACE_DEBIAN_SECURITY_MIRROR.
pub const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const SNAPSHOT: &str = "https://snapshot.debian.org/archive";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const COMPONENTS: &str = "main non-free-firmware";

/// Where the three suites of a release are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    main: String,
    security: String,
    /// Snapshot sources serve old, expired Release files: apt must not refuse them.
    snapshot: bool,
}

impl Sources {
    /// The configured mirrors: the environment's, else Debian's own.
    pub fn configured() -> Sources {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .unwrap_or_else(|| default.to_string())
        };
        Sources {
            main: var("CARAPACE_DEBIAN_MIRROR", MIRROR),
            security: var("CARAPACE_DEBIAN_SECURITY_MIRROR", SECURITY_MIRROR),
            snapshot: false,
        }
    }

    /// Explicit mirrors of the main and security archives.
    pub fn at(main: &str, security: &str) -> Sources {
        Sources {
            main: main.trim_end_matches('/').into(),
            security: security.trim_end_matches('/').into(),
            snapshot: false,
        }
    }

    /// The Debian snapshot archive as it was at `timestamp` (YYYYMMDDTHHMMSSZ).
    pub fn snapshot(timestamp: &str) -> Sources {
        Sources {
            main: format!("{SNAPSHOT}/debian/{timestamp}"),
            security: format!("{SNAPSHOT}/debian-security/{timestamp}"),
            snapshot: true,
        }
    }

    pub fn describe(&self) -> &str {
        &self.main
    }

    /// The sources.list for `suite`: the release, its point updates and its security fixes,
    /// each with main and non-free-firmware (as Debian's installer sets up since bookworm):
    /// real boards' Wi-Fi, GPU and NIC firmware is there. A recipe takes only what it names.
    pub fn list(&self, suite: &str) -> String {
        let options = if self.snapshot {
            format!("[signed-by={KEYRING} check-valid-until=no]")
        } else {
            format!("[signed-by={KEYRING}]")
        };
        let mut text = format!("deb {options} {} {suite} {COMPONENTS}\n", self.main);
        if has_update_suites(suite) {
            text.push_str(&format!(
                "deb {options} {} {suite}-updates {COMPONENTS}\n",
                self.main
            ));
            text.push_str(&format!(
                "deb {options} {} {suite}-security {COMPONENTS}\n",
                self.security
            ));
        }
        text
    }
}

/// unstable and experimental have no -updates or -security suites; -backports (read alone,
/// for a board's kernel) has neither.
fn has_update_suites(suite: &str) -> bool {
    !matches!(suite, "sid" | "unstable" | "experimental" | "rc-buggy")
        && !suite.ends_with("-backports")
}

pub struct Apt {
    root: PathBuf,
    suite: String,
    arch: String,
    sources: Sources,
    updated: bool,
}

/// One version of a package as the signed index describes it.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// The package's own architecture: the board's, or "all".
    pub architecture: String,
    pub sha256: String,
    pub depends: String,
}

impl Apt {
    /// A private apt for `suite` on `arch` reading `sources`; its state lives in
    /// `cache/apt/<state_name>`, one directory per distinct set of sources.
    pub fn new(
        cache: &Path,
        state_name: &str,
        suite: &str,
        arch: &str,
        sources: Sources,
    ) -> Result<Apt> {
        tools::require("apt-get", "apt")?;
        if !Path::new(KEYRING).exists() {
            return Err(Error::MissingTool {
                tool: KEYRING.into(),
                package: "debian-archive-keyring".into(),
            });
        }
        let root = cache.join("apt").join(format!("{state_name}-{arch}"));
        for dir in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            std::fs::create_dir_all(root.join(dir))
                .context(|| format!("create {}", root.display()))?;
        }
        std::fs::write(root.join("etc/sources.list"), sources.list(suite))
            .context(|| "write sources.list".into())?;
        let status = root.join("state/status");
        if !status.exists() {
            std::fs::write(&status, "").context(|| "write apt status".into())?;
        }
        Ok(Apt {
            root,
            suite: suite.into(),
            arch: arch.into(),
            sources,
            updated: false,
        })
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    fn options(&self) -> Vec<String> {
        let r = self.root.display();
        [
            format!("Dir::Etc::SourceList={r}/etc/sources.list"),
            format!("Dir::Etc::SourceParts={r}/etc/sources.list.d"),
            format!("Dir::Etc::Parts={r}/etc/apt.conf.d"),
            format!("Dir::Etc::Preferences={r}/etc/preferences"),
            format!("Dir::Etc::PreferencesParts={r}/etc/preferences.d"),
            format!("Dir::State={r}/state"),
            format!("Dir::State::status={r}/state/status"),
            format!("Dir::Cache={r}/cache"),
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures={}", self.arch),
            "APT::Sandbox::User=root".into(),
            "Debug::NoLocking=1".into(),
            "Acquire::Retries=3".into(),
            "Acquire::Languages=none".into(),
            "Acquire::http::Timeout=30".into(),
            "Acquire::https::Timeout=30".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn run(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> Result<String> {
        let mut cmd = Command::new(tool);
        cmd.args(self.options()).args(args).env("LC_ALL", "C");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        tools::output(&mut cmd)
    }

    /// Fetches the signed package indexes (once per build).
    pub fn update(&mut self) -> Result<()> {
        if !self.updated {
            eprintln!(
                "carapace: fetching the Debian {} indexes for {} from {}",
                self.suite,
                self.arch,
                self.sources.describe()
            );
            // --error-on=any: a missing index is a failure, not a warning and old lists.
            self.run("apt-get", &["-q", "update", "--error-on=any"], None)?;
            self.updated = true;
        }
        Ok(())
    }

    /// The newest version of `name` across the suites (or exactly `version` when given);
    /// `None` when no suite has it.
    pub fn lookup(&mut self, name: &str, version: Option<&str>) -> Result<Option<IndexEntry>> {
        self.update()?;
        let spec = match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        };
        // An unknown package makes apt-cache exit 100; an unknown version of a known one
        // exits 0 and prints nothing.
        let Ok(text) = self.run("apt-cache", &["show", "--no-all-versions", &spec], None) else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_stanza(&text)
            .map(Some)
            .ok_or_else(|| Error::Package(format!("apt printed no index entry for '{spec}'")))
    }

    /// Like `lookup`, but a package that is not there is an error that says what to check.
    pub fn require(&mut self, name: &str) -> Result<IndexEntry> {
        self.lookup(name, None)?.ok_or_else(|| {
            Error::Package(format!(
                "'{name}' is not in Debian {} (with its -updates and -security suites) for {}; \
                 check the name in the recipe",
                self.suite, self.arch
            ))
        })
    }

    /// The suite (e.g. "trixie-security") whose index has `name=version`.
    pub fn suite_of(&mut self, name: &str, version: &str) -> Result<String> {
        self.update()?;
        let text = self.run("apt-cache", &["madison", name], None)?;
        parse_madison(&text, version).ok_or_else(|| {
            Error::Package(format!(
                "apt-cache madison lists no suite for {name}={version}"
            ))
        })
    }

    /// Downloads `name=version` into `dir` and returns the file.
    pub fn download(&mut self, entry: &IndexEntry, dir: &Path) -> Result<PathBuf> {
        self.update()?;
        std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        let spec = format!("{}={}", entry.name, entry.version);
        self.run("apt-get", &["-q", "download", &spec], Some(dir))?;
        let file = dir.join(deb_file_name(
            &entry.name,
            &entry.version,
            &entry.architecture,
        ));
        if file.exists() {
            return Ok(file);
        }
        Err(Error::Package(format!(
            "apt downloaded {spec} but {} is missing",
            file.display()
        )))
    }
}

/// apt's file name for a package: the epoch colon becomes %3a.
pub fn deb_file_name(name: &str, version: &str, arch: &str) -> String {
    format!("{name}_{}_{arch}.deb", version.replace(':', "%3a"))
}

fn parse_stanza(text: &str) -> Option<IndexEntry> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')))
            .map(|v| v.trim().to_string())
    };
    Some(IndexEntry {
        name: field("Package")?,
        version: field("Version")?,
        architecture: field("Architecture")?,
        sha256: field("SHA256")?,
        depends: field("Depends").unwrap_or_default(),
    })
}

/// `apt-cache madison` prints ` name | version | URI suite/component arch Packages`.
fn parse_madison(text: &str, version: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split('|').map(str::trim);
        let (_name, v, source) = (fields.next()?, fields.next()?, fields.next()?);
        if v != version {
            return None;
        }
        let dist = source.split_whitespace().nth(1)?;
        Some(dist.split('/').next()?.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_index_stanza() {
        let text = "Package: linux-image-amd64\nSource: linux-signed-amd64 (6.12.107+1)\n\
                    Version: 6.12.107-1\nArchitecture: amd64\nDepends: linux-image-6.12.107+deb13-amd64 (= 6.12.107-1)\n\
                    SHA256: abcd\n";
        let e = parse_stanza(text).unwrap();
        assert_eq!(e.version, "6.12.107-1");
        assert_eq!(e.sha256, "abcd");
        assert!(e.depends.starts_with("linux-image-6.12"));
    }

    #[test]
    fn epoch_is_escaped_in_file_names() {
        assert_eq!(
            deb_file_name("qemu", "1:7.2", "amd64"),
            "qemu_1%3a7.2_amd64.deb"
        );
    }

    #[test]
    fn madison_names_the_suite_of_a_version() {
        let text = "     libc6 | 2.41-12+deb13u5 | http://deb.debian.org/debian-security trixie-security/main amd64 Packages\n\
                    \x20    libc6 | 2.41-12+deb13u4 | http://deb.debian.org/debian trixie/main amd64 Packages\n";
        assert_eq!(
            parse_madison(text, "2.41-12+deb13u5").as_deref(),
            Some("trixie-security")
        );
        assert_eq!(
            parse_madison(text, "2.41-12+deb13u4").as_deref(),
            Some("trixie")
        );
        assert_eq!(parse_madison(text, "2.40"), None);
    }

    #[test]
    fn a_release_is_read_with_its_updates_and_security_suites() {
        let list = Sources {
            main: MIRROR.into(),
            security: SECURITY_MIRROR.into(),
            snapshot: false,
        }
        .list("trixie");
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "{list}");
        assert!(
            lines[0].ends_with("/debian trixie main non-free-firmware"),
            "{list}"
        );
        assert!(
            lines[1].ends_with("/debian trixie-updates main non-free-firmware"),
            "{list}"
        );
        assert!(
            lines[2].ends_with("/debian-security trixie-security main non-free-firmware"),
            "{list}"
        );
        assert_eq!(
            Sources::configured().list("sid").lines().count(),
            1,
            "unstable has no -updates or -security suite"
        );
    }

    #[test]
    fn snapshot_sources_name_the_moment_and_accept_expired_releases() {
        let list = Sources::snapshot("20261121T093000Z").list("trixie");
        assert!(
            list.contains(
                "https://snapshot.debian.org/archive/debian/20261121T093000Z trixie main non-free-firmware"
            ),
            "{list}"
        );
        assert!(
            list.contains(
                "https://snapshot.debian.org/archive/debian-security/20261121T093000Z trixie-security main"
            ),
            "{list}"
        );
        assert!(list.contains("check-valid-until=no"), "{list}");
    }
}
