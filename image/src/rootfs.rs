//! The root file system: assembled as a list of files in memory, staged into a directory with
//! exact modes (what a release changes under release_dir::RELEASE_DIR, behind symlinks), and
//! packed by mkfs.erofs with fixed timestamps, UUID and no xattrs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{IoContext, Result};
use crate::release_dir::{self, RELEASE_DIR};
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
    /// A model file unpacked from a PyPI wheel pinned in infer/models.lock.
    Wheel {
        project: String,
        version: String,
        sha256: String,
    },
    /// A file of a signed model pack the recipe lists (carapace-models' pack.rs).
    ModelPack {
        name: String,
        version: String,
        signed_by: String,
    },
    /// From the vendor's board support package ([bsp]): its release and the file of
    /// Linux_for_Tegra it came from.
    Bsp {
        release: String,
        file: String,
    },
    /// From a package file in a folder the recipe points at (Raspberry Pi's kernel, Hailo's
    /// runtime): no registry we reach carries them, so the owner downloads them.
    Vendor {
        file: String,
        sha256: String,
    },
}

impl Origin {
    /// Ours, built or generated: what a release changes. Debian's files change only with
    /// their packages, a model's only with its pin (the kernel's modules, which do with every kernel, are a release
    /// directory of their own: `RootTree::release_dirs`).
    pub fn changes_between_releases(&self) -> bool {
        !matches!(
            self,
            Origin::Debian { .. }
                | Origin::Wheel { .. }
                | Origin::ModelPack { .. }
                | Origin::Bsp { .. }
                | Origin::Vendor { .. }
        )
    }
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
    /// Directories staged whole under RELEASE_DIR, with one symlink at their usual path:
    /// for files whose names change between releases (the kernel's release in
    /// /usr/lib/modules/<release>, the recipe's files in /etc/carapace), so that no name
    /// outside RELEASE_DIR changes.
    pub release_dirs: Vec<String>,
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

    /// Whether `path` is one of `release_dirs` or below one.
    fn in_release_dir(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        self.release_dirs.iter().any(|d| {
            path.strip_prefix(d.trim_start_matches('/'))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Where `file`'s bytes are in the image: under RELEASE_DIR when a release changes it
    /// or its directory's names, else at its path.
    pub fn stored_path(&self, file: &RootFile) -> String {
        if file.origin.changes_between_releases() || self.in_release_dir(&file.path) {
            release_dir::relocated(&file.path)
        } else {
            file.path.clone()
        }
    }

    /// Writes the tree into `dir` (which must not exist).
    pub fn stage(&self, dir: &Path) -> Result<()> {
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p).context(|| format!("create {}", p.display()))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                .context(|| format!("chmod {}", p.display()))
        };
        let staged = |path: &str| dir.join(path.trim_start_matches('/'));
        // A symlink at `path` to its place under RELEASE_DIR.
        let link_to_release_dir = |path: &str| -> Result<()> {
            let link = staged(path);
            if let Some(parent) = link.parent() {
                mkdir(parent)?;
            }
            std::os::unix::fs::symlink(release_dir::link_target(path), &link)
                .context(|| format!("symlink {}", link.display()))
        };
        mkdir(dir)?;
        for d in &self.dirs {
            if self.in_release_dir(d) {
                mkdir(&staged(&release_dir::relocated(d)))?;
            } else {
                mkdir(&staged(d))?;
            }
        }
        for d in &self.release_dirs {
            mkdir(&staged(&release_dir::relocated(d)))?;
            link_to_release_dir(d)?;
        }
        for (link, target) in &self.symlinks {
            let at = staged(link);
            if let Some(parent) = at.parent() {
                mkdir(parent)?;
            }
            std::os::unix::fs::symlink(target, &at)
                .context(|| format!("symlink {}", at.display()))?;
        }
        for f in &self.files {
            let stored = self.stored_path(f);
            if stored != f.path && !self.in_release_dir(&f.path) {
                link_to_release_dir(&f.path)?;
            }
            let at = staged(&stored);
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
        if dir.join(RELEASE_DIR.trim_start_matches('/')).exists() {
            release_dir::check_sorts_last(dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Letters from a xorshift: compressible, like program text, and never two files alike.
    fn letters(seed: u64, len: usize) -> Vec<u8> {
        noise(seed, len)
            .into_iter()
            .map(|b| b'a' + (b & 7))
            .collect()
    }

    /// Bytes lz4 cannot shrink: grows a file on disk by as much as it grows.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn debian(package: &str) -> Origin {
        Origin::Debian {
            package: package.into(),
            version: "1".into(),
            suite: "trixie".into(),
        }
    }

    /// Debian's files on both sides of /usr/bin/agentd in the walk, the kernel's modules, and
    /// a generated file.
    fn tree(agentd: Vec<u8>) -> RootTree {
        let mut root = RootTree {
            dirs: vec!["sbin".into(), "usr/bin".into(), "var".into()],
            release_dirs: vec!["/etc/carapace".into(), "/usr/lib/modules".into()],
            ..RootTree::default()
        };
        let crate_origin = Origin::Crate {
            name: "carapace-agentd".into(),
            git_revision: "test".into(),
        };
        root.add(
            "/usr/bin/agentd",
            0o755,
            Content::Bytes(agentd),
            crate_origin,
        );
        for (i, (path, package)) in [
            ("/usr/bin/dbus-daemon", "dbus-daemon"),
            ("/usr/lib/x86_64-linux-gnu/libc.so.6", "libc6"),
            ("/usr/libexec/iwd", "iwd"),
            ("/usr/sbin/mke2fs", "e2fsprogs"),
            (
                "/usr/lib/modules/6.12.0-amd64/kernel/a.ko",
                "linux-image-6.12.0-amd64",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = letters(i as u64 + 1, 150_000);
            root.add(path, 0o755, Content::Bytes(bytes), debian(package));
        }
        root.add(
            "/etc/carapace/image.toml",
            0o644,
            Content::Bytes(b"version = \"0.1.0\"\n".to_vec()),
            Origin::Generated { by: "test".into() },
        );
        root
    }

    fn erofs(root: &RootTree, dir: &Path, name: &str) -> Vec<u8> {
        let staging = dir.join(format!("{name}-rootfs"));
        root.stage(&staging).unwrap();
        let image = dir.join(format!("{name}.erofs"));
        let uuid = uuid::Uuid::from_u128(1);
        make_erofs(&staging, &image, &uuid, 1_767_225_600).unwrap();
        std::fs::read(image).unwrap()
    }

    /// The physical start of each of `path`'s extents, from erofs-utils' dump.erofs.
    fn extents(image: &[u8], dir: &Path, path: &str) -> Vec<u64> {
        let file = dir.join("dump.erofs");
        std::fs::write(&file, image).unwrap();
        let out = Command::new("dump.erofs")
            .args(["-e", "--path", path])
            .arg(&file)
            .output()
            .expect("dump.erofs (erofs-utils)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "   0:        0..   10825 |   10825 :       4096..      8192 |    4096"
        let starts: Vec<u64> = text
            .lines()
            .filter_map(|l| l.trim_start().split_once(':'))
            .filter(|(index, _)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|(_, rest)| rest.split(':').nth(1))
            .filter_map(|physical| physical.split("..").next()?.trim().parse().ok())
            .collect();
        assert!(!starts.is_empty(), "no extents for {path}:\n{text}");
        starts
    }

    #[test]
    fn what_a_release_changes_is_staged_last_and_reached_by_its_usual_path() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("rootfs");
        tree(b"agentd".to_vec()).stage(&staging).unwrap();
        let link = |p: &str| {
            let meta = std::fs::symlink_metadata(staging.join(p)).unwrap();
            assert!(meta.file_type().is_symlink(), "{p} is not a symlink");
            std::fs::read_link(staging.join(p)).unwrap()
        };
        assert_eq!(
            link("usr/bin/agentd"),
            Path::new("../../zz-release/usr/bin/agentd")
        );
        assert_eq!(
            std::fs::read(staging.join("usr/bin/agentd")).unwrap(),
            b"agentd"
        );
        let mode = std::fs::metadata(staging.join("zz-release/usr/bin/agentd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        // Whole directories: one link each, whatever the names below them.
        assert_eq!(
            link("etc/carapace"),
            Path::new("../zz-release/etc/carapace")
        );
        assert_eq!(
            std::fs::read(staging.join("etc/carapace/image.toml")).unwrap(),
            b"version = \"0.1.0\"\n"
        );
        link("usr/lib/modules");
        assert!(
            staging
                .join("usr/lib/modules/6.12.0-amd64/kernel/a.ko")
                .is_file()
        );
        // Debian's files stay where they are.
        let mke2fs = std::fs::symlink_metadata(staging.join("usr/sbin/mke2fs")).unwrap();
        assert!(mke2fs.file_type().is_file());
    }

    /// The point of the release directory: agentd grows by 40 KB that lz4 cannot shrink, and
    /// every file of Debian's keeps its place in the image (with agentd at /usr/bin/agentd,
    /// libc, iwd and mke2fs, which the walk reaches after it, would move). What differs is
    /// agentd and the few blocks of metadata around it.
    #[test]
    fn a_release_that_grows_agentd_moves_no_file_of_debians() {
        let dir = tempfile::tempdir().unwrap();
        let agentd = letters(10, 300_000);
        let mut grown = agentd.clone();
        grown.splice(1000..1000, noise(11, 40_000));
        let before = erofs(&tree(agentd.clone()), dir.path(), "before");
        let after = erofs(&tree(grown), dir.path(), "after");
        assert_eq!(
            before,
            erofs(&tree(agentd), dir.path(), "again"),
            "same inputs, same bytes"
        );

        for path in [
            "/usr/bin/dbus-daemon",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/libexec/iwd",
            "/usr/sbin/mke2fs",
        ] {
            assert_eq!(
                extents(&before, dir.path(), path),
                extents(&after, dir.path(), path),
                "{path} moved"
            );
        }
        // Blocks of the new image found nowhere in the old one (moved ones are found: a
        // chunked update fetches them from the running slot): agentd's own, and the few of
        // metadata that say where things are (the superblock's size and checksum, the
        // release directory's inodes).
        let agentd_blocks = extents(&after, dir.path(), "/zz-release/usr/bin/agentd").len();
        let old_blocks: std::collections::HashSet<&[u8]> = before.chunks(4096).collect();
        let new_blocks = after
            .chunks(4096)
            .filter(|b| !old_blocks.contains(b))
            .count();
        assert!(
            new_blocks <= agentd_blocks + 4,
            "{new_blocks} new blocks; agentd has {agentd_blocks}"
        );
    }
}
