//! Debian packages through apt, under a private configuration inside the build cache: its own
//! sources list, state, cache and architecture. The host's apt sources and root are never
//! touched. apt checks the archive's signatures (InRelease against debian-archive-keyring) and
//! each .deb against the signed index; we check the .deb again against the lock file's sha256.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::tools;

pub const MIRROR: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

pub struct Apt {
    root: PathBuf,
    suite: String,
    arch: String,
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
    pub fn new(cache: &Path, suite: &str, arch: &str) -> Result<Apt> {
        tools::require("apt-get", "apt")?;
        if !Path::new(KEYRING).exists() {
            return Err(Error::MissingTool {
                tool: KEYRING.into(),
                package: "debian-archive-keyring".into(),
            });
        }
        let root = cache.join("apt").join(format!("{suite}-{arch}"));
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
        let sources = format!("deb [signed-by={KEYRING}] {MIRROR} {suite} main\n");
        std::fs::write(root.join("etc/sources.list"), sources)
            .context(|| "write sources.list".into())?;
        let status = root.join("state/status");
        if !status.exists() {
            std::fs::write(&status, "").context(|| "write apt status".into())?;
        }
        Ok(Apt {
            root,
            suite: suite.into(),
            arch: arch.into(),
            updated: false,
        })
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

    /// Fetches the signed package index (once per build).
    pub fn update(&mut self) -> Result<()> {
        if !self.updated {
            eprintln!(
                "carapace: fetching the Debian {} index for {}",
                self.suite, self.arch
            );
            self.run("apt-get", &["-q", "update"], None)?;
            self.updated = true;
        }
        Ok(())
    }

    /// The candidate version of `name` (or exactly `version` when given).
    pub fn lookup(&mut self, name: &str, version: Option<&str>) -> Result<IndexEntry> {
        self.update()?;
        let spec = match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        };
        let text = self
            .run("apt-cache", &["show", "--no-all-versions", &spec], None)
            .map_err(|_| {
                Error::Package(format!(
                    "'{spec}' is not in Debian {} for {}; check the name in the recipe (or delete \
                 the lock file if the archive moved on)",
                    self.suite, self.arch
                ))
            })?;
        parse_stanza(&text).ok_or_else(|| Error::Package(format!("no index entry for '{spec}'")))
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
}
