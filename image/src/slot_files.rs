//! What `carapace build` keeps of a slot for `carapace bundle`: the root image exactly as it is
//! written to a root partition (erofs, then its dm-verity tree), the slot's boot files, and
//! `slot.json` with what a manifest needs besides them. In out/<recipe>/slot/.
//!
//! The files are the same for slot A and slot B: nothing slot-specific is inside them (the
//! partition UUIDs and slot letter are on the command line, which each slot's loader entry
//! carries and the box writes for the slot it updates). A signed build's are the exception:
//! its command line is signed into each slot's UKI or Pi boot.img, so it keeps one per slot,
//! named by the slot.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{rename_durably, write_atomic};

pub const DIR: &str = "slot";
pub const INFO: &str = "slot.json";
pub const ROOT_IMAGE: &str = "root.img";
/// A UEFI slot's boot files, by their names in the slot's directory on the ESP. A Pi slot's
/// are its boot partition's (config.txt and the device trees besides these), or for a signed
/// Pi each slot's boot.img and boot.sig (`pi_signed_boot::slot_file_names`) and config.txt,
/// listed in slot.json.
pub const BOOT_FILES: [&str; 2] = ["vmlinuz", "initrd"];

pub(crate) fn uefi_boot_files() -> Vec<String> {
    BOOT_FILES.iter().map(|name| name.to_string()).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotInfo {
    pub recipe: String,
    pub board: String,
    pub version: String,
    pub build_id: String,
    /// The command line words besides the boot contract's `carapace.*` ones.
    pub kernel_cmdline: String,
    pub verity: carapace_update::Verity,
    /// The update trust built into the root (the recipe's [update]), if any: an update made
    /// from this slot carries it to every box that installs it.
    pub update_trust: Option<UpdateTrust>,
    /// The slot's boot files, as paths in its boot directory or partition (slot.json from
    /// before this field held the UEFI pair).
    #[serde(default = "uefi_boot_files")]
    pub boot_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTrust {
    pub root_key: String,
    pub key_list_sha256: carapace_update::Sha256Digest,
}

impl UpdateTrust {
    pub fn of(update: &crate::recipe::UpdateSection) -> UpdateTrust {
        UpdateTrust {
            root_key: update.root_key.clone(),
            key_list_sha256: carapace_update::Sha256Digest::of(update.key_list_text.as_bytes()),
        }
    }
}

/// The slot's files, as written by a build.
#[derive(Debug)]
pub struct SlotFiles {
    pub dir: PathBuf,
    pub info: SlotInfo,
}

impl SlotFiles {
    pub fn root_image(&self) -> PathBuf {
        self.dir.join(ROOT_IMAGE)
    }

    pub fn boot_files(&self) -> Vec<(String, PathBuf)> {
        self.info
            .boot_files
            .iter()
            .map(|name| (name.clone(), self.dir.join(name)))
            .collect()
    }

    /// Reads out/<recipe>/slot/; `None` when no finished build left one.
    pub fn read(out: &Path) -> Result<Option<SlotFiles>> {
        SlotFiles::read_dir(&out.join(DIR))
    }

    /// Reads a slot directory itself (one kept from an earlier build, for patches).
    pub fn read_dir(dir: &Path) -> Result<Option<SlotFiles>> {
        let dir = dir.to_owned();
        let info_path = dir.join(INFO);
        let text = match std::fs::read_to_string(&info_path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).context(|| format!("read {}", info_path.display())),
        };
        let info: SlotInfo = serde_json::from_str(&text).map_err(|err| {
            Error::image(format!(
                "{}: {err}; build again (carapace bundle --build)",
                info_path.display()
            ))
        })?;
        Ok(Some(SlotFiles { dir, info }))
    }
}

/// Writes out/<recipe>/slot/ whole: into slot.partial/, then renamed into place.
pub fn write(
    out: &Path,
    info: &SlotInfo,
    root_data: &[u8],
    tree: &[u8],
    boot: &[(String, Vec<u8>)],
) -> Result<()> {
    let dir = out.join(DIR);
    let partial = out.join(format!("{DIR}.partial"));
    remove_dir(&partial)?;
    std::fs::create_dir_all(&partial).context(|| format!("create {}", partial.display()))?;
    let root_path = partial.join(ROOT_IMAGE);
    let ctx = || format!("write {}", root_path.display());
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&root_path).context(ctx)?;
        file.write_all(root_data).context(ctx)?;
        file.write_all(tree).context(ctx)?;
        file.sync_all().context(ctx)?;
    }
    for (name, bytes) in boot {
        let path = partial.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        write_atomic(&path, bytes)?;
    }
    let text = serde_json::to_string_pretty(info).map_err(|e| Error::image(e.to_string()))?;
    write_atomic(&partial.join(INFO), text.as_bytes())?;
    remove_dir(&dir)?;
    rename_durably(&partial, &dir)
}

/// A UEFI slot's two boot files with these bytes (for tests).
#[cfg(test)]
pub(crate) fn uefi_pair(vmlinuz: &[u8], initrd: &[u8]) -> Vec<(String, Vec<u8>)> {
    BOOT_FILES
        .iter()
        .map(|name| name.to_string())
        .zip([vmlinuz.to_vec(), initrd.to_vec()])
        .collect()
}

pub fn remove(out: &Path) -> Result<()> {
    remove_dir(&out.join(DIR))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_back() {
        let out = tempfile::tempdir().unwrap();
        assert!(SlotFiles::read(out.path()).unwrap().is_none());
        let info = SlotInfo {
            recipe: "t".into(),
            board: "x86-64".into(),
            version: "0.1.0".into(),
            build_id: "0011223344556677".into(),
            kernel_cmdline: "console=tty0".into(),
            verity: carapace_update::Verity {
                root_hash: carapace_update::Sha256Digest::of(b"x"),
                salt: "00".into(),
                data_blocks: 1,
                hash_start_block: 1,
            },
            update_trust: None,
            boot_files: uefi_boot_files(),
        };
        write(
            out.path(),
            &info,
            b"data",
            b"tree",
            &crate::slot_files::uefi_pair(b"kernel", b"initrd"),
        )
        .unwrap();
        let slot = SlotFiles::read(out.path()).unwrap().unwrap();
        assert_eq!(slot.info, info);
        assert_eq!(std::fs::read(slot.root_image()).unwrap(), b"datatree");
        assert_eq!(std::fs::read(&slot.boot_files()[1].1).unwrap(), b"initrd");
        assert!(!out.path().join("slot.partial").exists());
        remove(out.path()).unwrap();
        assert!(SlotFiles::read(out.path()).unwrap().is_none());
    }
}
