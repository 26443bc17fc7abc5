//! Raspberry Pi's own kernel for a Pi image (`[pi_kernel]`), instead of the board's Debian one:
//! only it sets the firmware's tryboot flag (so a trial goes through the firmware) and has the
//! Hailo driver in-tree (`hailo_pci`). No registry we reach carries it, so the owner downloads
//! its packages from Raspberry Pi OS's archive into a folder and points the recipe at it:
//!
//! ```text
//!  <dir>/
//!    linux-image-<release>_<version>_arm64.deb   boot/vmlinuz-<release>
//!                                                (usr/)lib/modules/<release>/: modules,
//!                                                  modules.builtin
//!                                                usr/lib/linux-image-<release>/: broadcom/
//!                                                  bcm2712*.dtb, overlays/
//!    (any other .deb: taken only if it holds files of <release>)
//! ```
//!
//! The builder takes the kernel, the modules the board and recipe name, every bcm2712 device
//! tree and the whole overlays folder (the firmware applies `bcm2712d0` on D0 boards itself,
//! through overlays/overlay_map.dtb). Its modules carry no signature Debian's keyring checks,
//! so such an image does not enforce module signatures.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::sha256_hex;
use crate::kmod::KernelTree;
use crate::packages;
use crate::recipe::PiKernelSection;
use crate::rootfs::Origin;

pub struct PiKernel {
    pub release: String,
    parts: Vec<Part>,
}

/// One .deb of the folder that holds files of the release.
struct Part {
    root: PathBuf,
    file: String,
    sha256: String,
}

impl PiKernel {
    /// Unpacks the folder's packages under `work` and keeps those with the release's files.
    pub fn open(section: &PiKernelSection, work: &Path) -> Result<PiKernel> {
        let dir = &section.path;
        let release = &section.release;
        let fail = |what: String| Error::PiKernel(format!("{}: {what}", dir.display()));
        let entries = std::fs::read_dir(dir).map_err(|e| {
            fail(format!(
                "cannot read the folder ({e}); download Raspberry Pi's kernel packages into it, \
                 or point [pi_kernel] dir (or CARAPACE_PI_KERNEL_DIR) at them"
            ))
        })?;
        let mut debs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        if debs.is_empty() {
            return Err(fail("it holds no .deb files".into()));
        }
        let mut parts = Vec::new();
        for deb in debs {
            let bytes = std::fs::read(&deb).context(|| format!("read {}", deb.display()))?;
            let sha256 = sha256_hex(&bytes);
            let root = packages::unpack(&deb, &work.join("pi-kernel").join(&sha256))?;
            let holds_release = [
                format!("boot/vmlinuz-{release}"),
                format!("usr/lib/modules/{release}"),
                format!("lib/modules/{release}"),
                format!("usr/lib/linux-image-{release}"),
            ]
            .iter()
            .any(|p| root.join(p).exists());
            if holds_release {
                let file = deb
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                parts.push(Part { root, file, sha256 });
            }
        }
        if parts.is_empty() {
            return Err(fail(format!(
                "no package holds kernel {release} (boot/vmlinuz-{release}, lib/modules/\
                 {release}); download that release's linux-image package, or change [pi_kernel] \
                 release"
            )));
        }
        Ok(PiKernel {
            release: release.clone(),
            parts,
        })
    }

    /// The kernel, its modules and device trees.
    pub fn tree(&self) -> Result<KernelTree> {
        let roots: Vec<&Path> = self.parts.iter().map(|p| p.root.as_path()).collect();
        let tree = KernelTree::open_release(&roots, Some(&self.release))?;
        if tree.overlays_dir().is_none() {
            return Err(Error::PiKernel(format!(
                "kernel {} ships no overlays/ beside its device trees \
                 (usr/lib/linux-image-{}/overlays): is this Raspberry Pi's kernel?",
                self.release, self.release
            )));
        }
        Ok(tree)
    }

    /// The package a file of [`PiKernel::tree`] came from.
    pub fn origin_of(&self, path: &Path) -> Option<Origin> {
        self.parts
            .iter()
            .find(|p| path.starts_with(&p.root))
            .map(|p| Origin::Vendor {
                file: p.file.clone(),
                sha256: p.sha256.clone(),
            })
    }

    /// What the build id covers: each package taken, by name and sha256.
    pub fn identity(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("pi_kernel {} {}\n", p.file, p.sha256))
            .collect()
    }
}
