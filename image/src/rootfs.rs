//! The root file system: assembled as a list of files in memory, staged into a directory with
//! exact modes, and packed by mkfs.erofs with fixed timestamps, UUID and no xattrs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{IoContext, Result};
use crate::tools;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Debian {
        package: String,
        version: String,
        /// The suite whose index served it, e.g. "trixie-security".
        suite: String,
    },
    Crate {
        name: String,
        git_revision: String,
    },
    Generated {
        by: String,
    },
}

pub enum Content {
    Bytes(Vec<u8>),
    Copy(PathBuf),
}

pub struct RootFile {
    pub path: String,
    pub mode: u32,
    pub content: Content,
    pub origin: Origin,
}

#[derive(Default)]
pub struct RootTree {
    pub files: Vec<RootFile>,
    pub dirs: Vec<String>,
    pub symlinks: Vec<(String, String)>,
}

impl RootTree {
    pub fn add(&mut self, path: &str, mode: u32, content: Content, origin: Origin) {
        self.files.retain(|f| f.path != path);
        self.files.push(RootFile {
            path: path.to_string(),
            mode,
            content,
            origin,
        });
    }

    /// Writes the tree into `dir` (which must not exist).
    pub fn stage(&self, dir: &Path) -> Result<()> {
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p).context(|| format!("create {}", p.display()))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                .context(|| format!("chmod {}", p.display()))
        };
        mkdir(dir)?;
        for d in &self.dirs {
            mkdir(&dir.join(d.trim_start_matches('/')))?;
        }
        for (link, target) in &self.symlinks {
            let at = dir.join(link.trim_start_matches('/'));
            std::os::unix::fs::symlink(target, &at)
                .context(|| format!("symlink {}", at.display()))?;
        }
        for f in &self.files {
            let at = dir.join(f.path.trim_start_matches('/'));
            if let Some(parent) = at.parent() {
                mkdir(parent)?;
            }
            match &f.content {
                Content::Bytes(b) => {
                    std::fs::write(&at, b).context(|| format!("write {}", at.display()))?
                }
                Content::Copy(src) => {
                    std::fs::copy(src, &at)
                        .context(|| format!("copy {} to {}", src.display(), at.display()))?;
                }
            }
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(f.mode))
                .context(|| format!("chmod {}", at.display()))?;
        }
        Ok(())
    }
}

pub fn make_erofs(staging: &Path, out: &Path, uuid: &uuid::Uuid, epoch: u64) -> Result<()> {
    tools::require("mkfs.erofs", "erofs-utils")?;
    let _ = std::fs::remove_file(out);
    tools::output(
        Command::new("mkfs.erofs")
            .arg("-zlz4hc")
            .arg(format!("-T{epoch}"))
            .arg(format!("-U{uuid}"))
            .arg("-x-1")
            .arg("--all-root")
            .arg("--quiet")
            .arg(out)
            .arg(staging),
    )?;
    Ok(())
}
