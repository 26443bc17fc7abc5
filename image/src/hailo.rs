//! The AI HAT+ (Hailo-8, Hailo-8L) and AI HAT+ 2 (Hailo-10H) for a Pi image (`[hailo]`): the
//! kernel driver, the accelerator's firmware and HailoRT must be the same release, or
//! libhailort refuses the driver (HAILO_INVALID_DRIVER_VERSION). No registry we reach carries
//! them, so the owner puts them in a folder and the builder checks them against each other and
//! puts them in the same slot, where an update replaces them together:
//!
//! ```text
//!  <dir>/
//!    libhailort.so.<version>        HailoRT for aarch64 (what the engine loads)
//!    hailo8_fw.<version>.bin        hailo8: the firmware, as Hailo's download script names it
//!    hailo10h_fw.<version>/         hailo10h: its firmware set, as its tarball unpacks
//!    hailo_pci.ko | hailo1x_pci.ko  optional: the driver built for the image's kernel; without
//!                                   it, the kernel's own (Raspberry Pi's has hailo_pci)
//! ```
//!
//! The driver's `version=` (modinfo) must be `<version>`, and a driver from the folder must be
//! built for the image's kernel (its vermagic) and, where the kernel enforces module
//! signatures, signed.

use std::path::{Path, PathBuf};

use object::{Architecture, Object, ObjectKind};
use serde::Deserialize;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::sha256_hex;
use crate::kmod::{KernelTree, modinfo_field};
use crate::rootfs::Origin;

/// Which accelerator the HAT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HailoDevice {
    /// AI HAT+ (13 and 26 TOPS) and the AI Kit: Hailo-8L, Hailo-8 (HailoRT 4.x).
    Hailo8,
    /// AI HAT+ 2: Hailo-10H (HailoRT 5.x).
    Hailo10h,
}

/// The files the Hailo-10H driver loads in its three boot stages (hailort-drivers' master).
const HAILO10H_FIRMWARE: [&str; 7] = [
    "customer_certificate.bin",
    "scu_fw.bin",
    "u-boot.dtb.signed",
    "u-boot-spl.bin",
    "u-boot-tfa.itb",
    "fitImage",
    "image-fs",
];

/// What a signed module ends with (scripts/sign-file).
const SIGNATURE_MARKER: &[u8] = b"~Module signature appended~\n";

impl HailoDevice {
    /// The kernel module that drives it.
    pub fn module(self) -> &'static str {
        match self {
            HailoDevice::Hailo8 => "hailo_pci",
            HailoDevice::Hailo10h => "hailo1x_pci",
        }
    }
}

/// One file for the root.
pub struct HailoFile {
    pub image_path: String,
    pub source: PathBuf,
    pub origin: Origin,
}

pub struct Hailo {
    /// HailoRT first, then the firmware.
    pub files: Vec<HailoFile>,
    /// The driver's module name, for the root's modules.
    pub module: String,
}

/// Checks the folder against `version` and the kernel, and adds a driver from the folder to
/// `kernel`.
pub fn open(
    dir: &Path,
    device: HailoDevice,
    version: &str,
    kernel: &mut KernelTree,
    signatures_enforced: bool,
) -> Result<Hailo> {
    let fail = |what: String| Error::Hailo(format!("{}: {what}", dir.display()));
    if !dir.is_dir() {
        return Err(fail(
            "no such folder; put HailoRT, the firmware (and the driver) there, or point [hailo] \
             dir (or CARAPACE_HAILO_DIR) at them"
                .into(),
        ));
    }
    let vendor = |path: &Path| -> Result<Origin> {
        let bytes = std::fs::read(path).context(|| format!("read {}", path.display()))?;
        Ok(Origin::Vendor {
            file: path
                .strip_prefix(dir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            sha256: sha256_hex(&bytes),
        })
    };
    let mut files = Vec::new();

    let library_name = format!("libhailort.so.{version}");
    let library = dir.join(&library_name);
    let bytes = std::fs::read(&library).map_err(|e| {
        fail(format!(
            "{library_name} ({e}): HailoRT {version} for aarch64 must be there; a HailoRT of \
             another version does not drive a {version} driver"
        ))
    })?;
    let elf = object::File::parse(&*bytes)
        .map_err(|e| fail(format!("{library_name} is not an ELF library ({e})")))?;
    if elf.architecture() != Architecture::Aarch64 || elf.kind() != ObjectKind::Dynamic {
        return Err(fail(format!(
            "{library_name} is not an aarch64 shared library ({:?}, {:?})",
            elf.architecture(),
            elf.kind()
        )));
    }
    files.push(HailoFile {
        image_path: format!("/usr/lib/{library_name}"),
        source: library.clone(),
        origin: vendor(&library)?,
    });

    match device {
        HailoDevice::Hailo8 => {
            let name = format!("hailo8_fw.{version}.bin");
            let firmware = dir.join(&name);
            if !firmware.is_file() {
                return Err(fail(format!(
                    "{name} is missing: the Hailo-8 firmware of {version}"
                )));
            }
            files.push(HailoFile {
                image_path: "/usr/lib/firmware/hailo/hailo8_fw.bin".into(),
                origin: vendor(&firmware)?,
                source: firmware,
            });
        }
        HailoDevice::Hailo10h => {
            let folder = dir.join(format!("hailo10h_fw.{version}"));
            for name in HAILO10H_FIRMWARE {
                let firmware = folder.join(name);
                if !firmware.is_file() {
                    return Err(fail(format!(
                        "hailo10h_fw.{version}/{name} is missing: the Hailo-10H firmware of \
                         {version}"
                    )));
                }
                files.push(HailoFile {
                    image_path: format!("/usr/lib/firmware/hailo/hailo10h/{name}"),
                    origin: vendor(&firmware)?,
                    source: firmware,
                });
            }
        }
    }

    let module = device.module();
    let from_folder = dir.join(format!("{module}.ko"));
    if from_folder.is_file() {
        let bytes =
            std::fs::read(&from_folder).context(|| format!("read {}", from_folder.display()))?;
        let vermagic = modinfo_field(&bytes, "vermagic")
            .map_err(|e| fail(format!("{module}.ko: {e}")))?
            .unwrap_or_default();
        if vermagic.split(' ').next() != Some(kernel.release.as_str()) {
            return Err(fail(format!(
                "{module}.ko is built for kernel \"{vermagic}\", not the image's {}; build the \
                 driver against that kernel",
                kernel.release
            )));
        }
        if signatures_enforced && !bytes.ends_with(SIGNATURE_MARKER) {
            return Err(fail(format!(
                "{module}.ko is not signed, and the image's kernel loads only signed modules \
                 (module.sig_enforce=1); take Raspberry Pi's kernel ([pi_kernel]), whose \
                 {module} is in-tree"
            )));
        }
        kernel.add_module(&from_folder);
    }
    let driver = kernel.module_bytes(module)?.ok_or_else(|| {
        fail(format!(
            "no {module}.ko there, and kernel {} has no {module}: put the driver built for it \
             in the folder, or take Raspberry Pi's kernel ([pi_kernel])",
            kernel.release
        ))
    })?;
    let driver_version = modinfo_field(&driver, "version")
        .map_err(|e| fail(format!("{module}: {e}")))?
        .unwrap_or_default();
    if driver_version != version {
        return Err(fail(format!(
            "the driver {module} is version \"{driver_version}\" but HailoRT and the firmware \
             are {version}; libhailort refuses a driver of another version, so the three must \
             be one release"
        )));
    }
    Ok(Hailo {
        files,
        module: module.to_string(),
    })
}

/// What the build id covers: every file in the folder (and its sub-folders), by path and
/// sha256, sorted.
pub fn folder_identity(dir: &Path) -> Result<String> {
    let mut lines = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).context(|| format!("read {}", folder.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                lines.push(format!("hailo {name} {}\n", sha256_hex(&bytes)));
            }
        }
    }
    lines.sort();
    Ok(lines.concat())
}
