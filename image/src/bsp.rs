//! A vendor's board support package as a build input, for boards whose kernel is
//! `KernelSource::VendorBsp`: NVIDIA's Linux_for_Tegra, as the JetPack release the recipe's
//! `[bsp]` names unpacks it (Jetson_Linux_R36.4.3_aarch64.tbz2 for JetPack 6.2). No registry
//! we reach carries it, so the owner downloads it and points the recipe at it. What the
//! builder takes:
//!
//! ```text
//!  <dir>/Linux_for_Tegra/
//!    nv_tegra/nv_tegra_release        "# R36 (release), REVISION: 4.3, ...": must be [bsp] release
//!    kernel/Image                     the kernel (an uncompressed arm64 Image): each slot's vmlinuz
//!    kernel/kernel_supplements.tbz2   lib/modules/<kernel release>/: the modules, modules.builtin
//!    nv_tegra/l4t_deb_packages/
//!      <name>_<version>_arm64.deb     [bsp] packages (nvidia-l4t-core, nvidia-l4t-cuda, ...):
//!                                     the libraries and firmware under their usr/lib and lib
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::recipe::BspSection;
use crate::rootfs::Origin;
use crate::tools;

pub const BSP_ROOT: &str = "Linux_for_Tegra";
pub const RELEASE_FILE: &str = "nv_tegra/nv_tegra_release";
pub const KERNEL_IMAGE: &str = "kernel/Image";
pub const KERNEL_SUPPLEMENTS: &str = "kernel/kernel_supplements.tbz2";
pub const DEB_DIR: &str = "nv_tegra/l4t_deb_packages";

pub struct Bsp {
    /// The Linux_for_Tegra folder.
    pub root: PathBuf,
    /// "R36.4.3".
    pub release: String,
}

/// A file of one of the BSP's packages, for the root.
pub struct BspFile {
    pub image_path: String,
    pub source: PathBuf,
    pub origin: Origin,
}

/// A symbolic link of one of the BSP's packages (libcuda.so.1 → libcuda.so.1.1).
pub struct BspLink {
    pub image_path: String,
    pub target: String,
}

impl Bsp {
    /// Finds Linux_for_Tegra under the recipe's `[bsp] dir` and checks its release.
    pub fn open(section: &BspSection) -> Result<Bsp> {
        let root = section.path.join(BSP_ROOT);
        let fail = |what: String| Error::Bsp(format!("{}: {what}", root.display()));
        let text = std::fs::read_to_string(root.join(RELEASE_FILE)).map_err(|e| {
            fail(format!(
                "cannot read {RELEASE_FILE} ({e}); point [bsp] dir (or CARAPACE_BSP_DIR) at the \
                 folder the Jetson Linux archive unpacked into"
            ))
        })?;
        let release = parse_release(&text).ok_or_else(|| {
            fail(format!(
                "{RELEASE_FILE} does not start \"# R<major> (release), REVISION: <x.y>\""
            ))
        })?;
        if release != section.release {
            return Err(fail(format!(
                "this is {release}, but the recipe's [bsp] release is {}; unpack that release, \
                 or change the recipe",
                section.release
            )));
        }
        for file in [KERNEL_IMAGE, KERNEL_SUPPLEMENTS] {
            if !root.join(file).is_file() {
                return Err(fail(format!("{file} is missing")));
            }
        }
        Ok(Bsp { root, release })
    }

    pub fn origin(&self, file: &str) -> Origin {
        Origin::Bsp {
            release: self.release.clone(),
            file: file.to_string(),
        }
    }

    /// The kernel as a Debian kernel package lays it out (`boot/vmlinuz-<release>`,
    /// `usr/lib/modules/<release>/`), made under `work`, for `KernelTree::open`.
    pub fn kernel_tree(&self, work: &Path) -> Result<PathBuf> {
        let tree = work.join("bsp-kernel");
        let _ = std::fs::remove_dir_all(&tree);
        let usr = tree.join("usr");
        std::fs::create_dir_all(&usr).context(|| format!("create {}", usr.display()))?;
        tools::require("tar", "tar")?;
        tools::require("bzip2", "bzip2")?;
        tools::output(
            Command::new("tar")
                .arg("-xjf")
                .arg(self.root.join(KERNEL_SUPPLEMENTS))
                .arg("-C")
                .arg(&usr)
                .arg("--no-same-owner"),
        )?;
        let modules = usr.join("lib/modules");
        let releases: Vec<String> = std::fs::read_dir(&modules)
            .map_err(|e| {
                Error::Bsp(format!(
                    "{KERNEL_SUPPLEMENTS} has no lib/modules/<release>/ ({e})"
                ))
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let [release] = releases.as_slice() else {
            return Err(Error::Bsp(format!(
                "{KERNEL_SUPPLEMENTS} holds {} kernel releases ({releases:?}), not one",
                releases.len()
            )));
        };
        let boot = tree.join("boot");
        std::fs::create_dir_all(&boot).context(|| format!("create {}", boot.display()))?;
        std::fs::copy(
            self.root.join(KERNEL_IMAGE),
            boot.join(format!("vmlinuz-{release}")),
        )
        .context(|| format!("copy {KERNEL_IMAGE}"))?;
        Ok(tree)
    }

    /// The files and links the named packages put under usr/lib and lib (libraries,
    /// firmware), each at its /usr/lib path in the root.
    pub fn package_files(
        &self,
        names: &[String],
        work: &Path,
    ) -> Result<(Vec<BspFile>, Vec<BspLink>)> {
        let mut files = Vec::new();
        let mut links = Vec::new();
        for name in names {
            let (deb_name, deb) = self.deb(name)?;
            let tree = crate::packages::unpack(&deb, &work.join("bsp-debs").join(name))?;
            for top in ["usr/lib", "lib"] {
                let mut pending = vec![tree.join(top)];
                while let Some(dir) = pending.pop() {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries.filter_map(|e| e.ok()) {
                        let path = entry.path();
                        let rel = path.strip_prefix(&tree).unwrap_or(&path).to_string_lossy();
                        // /lib is a link to usr/lib in the root: store everything there.
                        let image_path = match rel.strip_prefix("lib/") {
                            Some(rest) => format!("/usr/lib/{rest}"),
                            None => format!("/{rel}"),
                        };
                        let kind = entry.file_type().context(|| rel.to_string())?;
                        if kind.is_symlink() {
                            let target = std::fs::read_link(&path).context(|| rel.to_string())?;
                            links.push(BspLink {
                                image_path,
                                target: target.to_string_lossy().into_owned(),
                            });
                        } else if kind.is_dir() {
                            pending.push(path);
                        } else {
                            files.push(BspFile {
                                image_path,
                                source: path.clone(),
                                origin: self.origin(&format!("{DEB_DIR}/{deb_name}")),
                            });
                        }
                    }
                }
            }
        }
        files.sort_by(|a, b| a.image_path.cmp(&b.image_path));
        links.sort_by(|a, b| a.image_path.cmp(&b.image_path));
        Ok((files, links))
    }

    /// What identifies this BSP's part of a build: its release and the sha256 of every file
    /// taken from it.
    pub fn identity(&self, packages: &[String]) -> Result<String> {
        let mut text = format!("bsp {}\n", self.release);
        let mut files = vec![
            (KERNEL_IMAGE.to_string(), self.root.join(KERNEL_IMAGE)),
            (
                KERNEL_SUPPLEMENTS.to_string(),
                self.root.join(KERNEL_SUPPLEMENTS),
            ),
        ];
        for name in packages {
            let (deb_name, deb) = self.deb(name)?;
            files.push((format!("{DEB_DIR}/{deb_name}"), deb));
        }
        for (name, path) in files {
            let mut hash = Sha256::new();
            let mut file =
                std::fs::File::open(&path).context(|| format!("open {}", path.display()))?;
            std::io::copy(&mut file, &mut hash).context(|| format!("read {}", path.display()))?;
            text.push_str(&format!("{name} {}\n", hex::encode(hash.finalize())));
        }
        Ok(text)
    }

    /// The one .deb of package `name`: its file name and path.
    fn deb(&self, name: &str) -> Result<(String, PathBuf)> {
        let dir = self.root.join(DEB_DIR);
        let prefix = format!("{name}_");
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Bsp(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix) && n.ends_with("_arm64.deb"))
            .collect();
        found.sort();
        match found.as_slice() {
            [one] => Ok((one.clone(), dir.join(one))),
            [] => Err(Error::Bsp(format!(
                "[bsp] packages: no {name}_*_arm64.deb in {}",
                dir.display()
            ))),
            many => Err(Error::Bsp(format!(
                "[bsp] packages: {} holds {} versions of {name} ({many:?}); keep one",
                dir.display(),
                many.len()
            ))),
        }
    }
}

/// "R36.4.3" from nv_tegra_release's first line, "# R36 (release), REVISION: 4.3, ...".
fn parse_release(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let major = line.strip_prefix("# R")?.split_whitespace().next()?;
    let revision = line
        .split(", ")
        .find_map(|field| field.strip_prefix("REVISION: "))?;
    (major.bytes().all(|b| b.is_ascii_digit()) && !revision.is_empty())
        .then(|| format!("R{major}.{}", revision.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_comes_from_nv_tegra_release() {
        let text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: \
                    aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n";
        assert_eq!(parse_release(text).as_deref(), Some("R36.4.3"));
        assert_eq!(parse_release("R36.4.3\n"), None);
        assert_eq!(parse_release("# Rx (release), REVISION: 1\n"), None);
    }
}
