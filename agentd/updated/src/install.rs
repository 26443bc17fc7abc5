//! Writing an update into the slot the box is not running, in an order that a power cut at any
//! point leaves bootable:
//!
//! ```text
//! 1. retire the other slot's entry        nothing boots the other slot from here on
//! 2. write its root partition             chunk by chunk (or from a patch), checked; whole hash
//! 3. write its kernel and initrd          <esp>/<slot>/vmlinuz.new → fsync → rename
//!    (or its signed UKI)                  <esp>/<slot>/carapace.efi, checked before step 1
//! 4. install its entry as a trial         one rename: from here on the other slot boots next
//! ```
//!
//! On a Raspberry Pi the boot files (config.txt and device trees besides) go to the slot's own
//! boot partition, step 1 removes its cmdline.txt and step 4 writes it, then points
//! autoboot.txt's `[tryboot]` at it (board_support::PiTryboot).
//!
//! A cut before 4 leaves the running slot the only entry, so the box comes back on it and the
//! next install starts over (the chunks already downloaded stay). The running slot's
//! partition and boot files are only ever read: they are where the unchanged chunks come from.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use board_support::boot_entry::{ESP_MOUNT_POINT, UKI_FILE, slot_boot_dir};
use board_support::slot_devices::{SLOT_DEVICES_PATH, SlotDevices};
use board_support::{BootControl, BootParams, Slot};
use board_support::{secure_boot_db, uki};
use carapace_update::manifest::verity_tree_blocks;
use carapace_update::{ChunkIndex, Manifest, assemble, check_downloads, plan};

use crate::error::{Error, Result};

const VERITY_BLOCK: u64 = 4096;

/// Where the running slot and the slot to write are.
pub struct Slots {
    pub booted: Slot,
    /// The running slot's partition (read: its unchanged chunks) and its image's length.
    pub booted_device: PathBuf,
    pub booted_image_len: u64,
    /// The other slot's partition (written), its PARTUUID and size.
    pub target: PathBuf,
    pub target_partuuid: String,
    pub target_size: u64,
    /// Where slot a's and slot b's boot files are: their folders on the ESP, or a Pi's boot
    /// partitions.
    pub boot_dirs: (PathBuf, PathBuf),
}

impl Slots {
    /// Both slots' partitions, as the disk helper found them for this boot.
    pub fn find(params: &BootParams) -> Result<Slots> {
        let devices = SlotDevices::load()?;
        if devices.booted.slot != params.slot || devices.booted.partuuid != params.root_partuuid {
            return Err(Error::Refused(format!(
                "{SLOT_DEVICES_PATH} describes slot {} ({}) as the running one, but this boot runs slot {} ({})",
                devices.booted.slot, devices.booted.partuuid, params.slot, params.root_partuuid
            )));
        }
        let verity = &params.verity;
        let booted_image_len =
            (verity.hash_start_block + verity_tree_blocks(verity.data_blocks)) * VERITY_BLOCK;
        let target = PathBuf::from(&devices.inactive.device);
        let target_size = File::open(&target)
            .and_then(|mut file| file.seek(SeekFrom::End(0)))
            .map_err(Error::io("measure", &target))?;
        Ok(Slots {
            booted: params.slot,
            booted_device: PathBuf::from(&devices.booted.device),
            booted_image_len,
            target,
            target_partuuid: devices.inactive.partuuid.clone(),
            target_size,
            boot_dirs: match devices.boot_partitions() {
                Some((a, b)) => (a.dir, b.dir),
                None => {
                    let esp = Path::new(ESP_MOUNT_POINT);
                    (
                        esp.join(slot_boot_dir(Slot::A)),
                        esp.join(slot_boot_dir(Slot::B)),
                    )
                }
            },
        })
    }

    fn boot_dir(&self, slot: Slot) -> &Path {
        match slot {
            Slot::A => &self.boot_dirs.0,
            Slot::B => &self.boot_dirs.1,
        }
    }

    /// The chunks the box has: the running slot's root image and boot files, cut with the
    /// new manifest's chunker (chunks only match when both sides cut alike).
    pub fn index_running(&self, manifest: &Manifest) -> Result<ChunkIndex> {
        let mut index = ChunkIndex::new();
        index.add_file(
            &self.booted_device,
            Some(self.booted_image_len),
            manifest.chunker,
        )?;
        // A slot's UKI is in the bundle under its slot's name (both slots'), on the ESP as
        // carapace.efi: the running one is read once.
        let names: std::collections::BTreeSet<&str> = manifest
            .boot
            .iter()
            .map(|file| {
                if is_uki(&file.path) {
                    UKI_FILE
                } else {
                    file.path.as_str()
                }
            })
            .collect();
        for name in names {
            let path = self.boot_dir(self.booted).join(name);
            if path.exists() {
                index.add_file(&path, None, manifest.chunker)?;
            }
        }
        Ok(index)
    }
}

/// Writes `manifest`'s slot from `local` and the chunks in `downloads`, then arms it. Every
/// downloaded chunk is checked before the first byte is written.
pub fn write_slot(
    manifest: &Manifest,
    local: &ChunkIndex,
    downloads: &Path,
    slots: &Slots,
    params: &BootParams,
    boot: &mut impl BootControl,
) -> Result<()> {
    let target = params.slot.other();
    if manifest.root.size > slots.target_size {
        return Err(Error::Refused(format!(
            "the new root image is {} bytes but slot {target}'s partition holds {}; this update needs a reflash",
            manifest.root.size, slots.target_size
        )));
    }
    // The same plan the download followed: it depends only on the manifest and the index.
    let plan = plan(local, manifest);
    check_downloads(&plan, downloads)?;
    let new_params = BootParams {
        slot: target,
        root_partuuid: slots.target_partuuid.clone(),
        data_partuuid: params.data_partuuid.clone(),
        esp_partuuid: params.esp_partuuid.clone(),
        verity: manifest.verity_params(),
    };
    let artifacts = manifest.artifacts();
    // A Secure Boot slot's UKI is read and checked whole before anything is written.
    let uki = signed_uki(
        manifest,
        &artifacts,
        &plan,
        local,
        downloads,
        slots,
        &new_params,
    )?;

    boot.retire(target)?;

    for artifact in &artifacts {
        match artifact.boot_path {
            // Written below, once: the other slot's UKI is not this slot's to write.
            Some(name) if is_uki(name) => {}
            None => {
                let device = &slots.target;
                let file = OpenOptions::new()
                    .write(true)
                    .open(device)
                    .map_err(Error::io("open for writing", device))?;
                let mut writer = BufWriter::with_capacity(1 << 20, &file);
                assemble(artifact, &plan, local, downloads, &mut writer)?;
                drop(writer);
                file.sync_all().map_err(Error::io("sync", device))?;
            }
            Some(name) => write_boot_file(slots.boot_dir(target), name, |writer| {
                assemble(artifact, &plan, local, downloads, writer).map_err(Error::from)
            })?,
        }
    }

    match uki {
        Some(bytes) => {
            write_boot_file(slots.boot_dir(target), UKI_FILE, |writer| {
                writer
                    .write_all(&bytes)
                    .map_err(Error::io("write", UKI_FILE))
            })?;
            boot.install_uki_trial(target, manifest.version.as_str())?;
        }
        None => boot.install_trial(
            target,
            manifest.version.as_str(),
            &manifest.command_line(&new_params),
        )?,
    }
    Ok(())
}

/// Writes `name` in a slot's boot folder: `<name>.new`, fsynced, renamed over it.
fn write_boot_file(
    boot_dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let path = boot_dir.join(name);
    // A Pi's overlays/ folder, or the slot's folder on the ESP.
    let dir = path.parent().unwrap_or(boot_dir);
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let temporary = boot_dir.join(format!("{name}.new"));
    let file = File::create(&temporary).map_err(Error::io("create", &temporary))?;
    let mut writer = BufWriter::with_capacity(1 << 20, &file);
    write(&mut writer)?;
    writer.flush().map_err(Error::io("write", &temporary))?;
    drop(writer);
    file.sync_all().map_err(Error::io("sync", &temporary))?;
    board_support::atomic_file::rename_durably(&temporary, &path)
        .map_err(Error::io("rename", &temporary))
}

/// A boot file that is one slot's unified kernel image (`carapace-a.efi`, `carapace-b.efi`).
fn is_uki(name: &str) -> bool {
    [Slot::A, Slot::B]
        .iter()
        .any(|&slot| name == uki::bundle_name(slot))
}

/// The target slot's UKI from a Secure Boot update, checked: it boots the slot being written
/// (its own signed command line names that slot's partition and the new root's verity hash),
/// and, when the firmware enforces Secure Boot, it is signed with a key in the firmware's db.
/// `None` for an update that carries a kernel and initrd, which a box that boots UKIs refuses:
/// its firmware would not start them.
fn signed_uki(
    manifest: &Manifest,
    artifacts: &[carapace_update::manifest::Artifact<'_>],
    plan: &carapace_update::Plan,
    local: &ChunkIndex,
    downloads: &Path,
    slots: &Slots,
    new_params: &BootParams,
) -> Result<Option<Vec<u8>>> {
    let target = new_params.slot;
    let carries_ukis = manifest.boot.iter().any(|file| is_uki(&file.path));
    if !carries_ukis {
        if slots.boot_dir(slots.booted).join(UKI_FILE).exists() {
            return Err(Error::Refused(
                "this box boots signed unified kernel images (Secure Boot), and this update \
                 carries a plain kernel and initramfs, which Secure Boot firmware refuses: make \
                 the update from a build signed with the box's Secure Boot keys (carapace bundle \
                 --secure-boot-keys)"
                    .to_owned(),
            ));
        }
        return Ok(None);
    }
    let name = uki::bundle_name(target);
    let artifact = artifacts
        .iter()
        .find(|a| a.boot_path == Some(name.as_str()))
        .ok_or_else(|| Error::Refused(format!("the update carries no {name} for slot {target}")))?;
    let mut bytes = Vec::new();
    assemble(artifact, plan, local, downloads, &mut bytes)?;
    check_uki(&bytes, new_params, Path::new(secure_boot_db::EFIVARS))?;
    Ok(Some(bytes))
}

fn check_uki(image: &[u8], expected: &BootParams, efivars: &Path) -> Result<()> {
    let slot = expected.slot;
    let cmdline = uki::section(image, ".cmdline")
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Error::Refused(format!(
                "the update's UKI for slot {slot} has no readable command line"
            ))
        })?;
    let found = BootParams::parse(cmdline)
        .map_err(|err| Error::Refused(format!("the update's UKI for slot {slot}: {err}")))?;
    if found != *expected {
        return Err(Error::Refused(format!(
            "the update's UKI for slot {slot} would boot {}, but this box's slot {slot} needs {}: \
             the update was built for another disk (partition ids derive from the recipe's \
             name, and each UKI's signed command line names its slot's; bundle the recipe this \
             box was built from)",
            found.to_kernel_args(),
            expected.to_kernel_args()
        )));
    }
    if secure_boot_db::secure_boot_on(efivars) == Some(true) {
        let db = secure_boot_db::db_certificates(efivars).map_err(Error::io("read", efivars))?;
        if !uki::carries_certificate(image, &db) {
            return Err(Error::Refused(format!(
                "the update's UKI for slot {slot} is not signed with a key in this box's \
                 Secure Boot db, so its firmware would refuse to start it: make the update from \
                 a build signed with the keys enrolled on this box"
            )));
        }
    }
    Ok(())
}

/// Downloaded chunks are kept until the slot they were for is armed; then they are removed.
pub fn clear_downloads(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use board_support::VerityParams;

    fn params(slot: Slot) -> BootParams {
        BootParams {
            slot,
            root_partuuid: "11111111-2222-4333-8444-555555555555".into(),
            data_partuuid: "21111111-2222-4333-8444-555555555555".into(),
            esp_partuuid: "31111111-2222-4333-8444-555555555555".into(),
            verity: VerityParams {
                root_hash: "ab".repeat(32),
                salt: "00ff".into(),
                data_blocks: 10,
                hash_start_block: 10,
            },
        }
    }

    /// efivarfs as the box sees it: SecureBoot on and db holding `cert`.
    fn efivars(cert: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(secure_boot_db::SECURE_BOOT_VAR),
            [6, 0, 0, 0, 1],
        )
        .unwrap();
        let size = 16 + cert.len();
        let mut db = vec![7, 0, 0, 0];
        db.extend_from_slice(&[0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a]);
        db.extend_from_slice(&[0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72]);
        db.extend_from_slice(&((28 + size) as u32).to_le_bytes());
        db.extend_from_slice(&0u32.to_le_bytes());
        db.extend_from_slice(&(size as u32).to_le_bytes());
        db.extend_from_slice(&[0u8; 16]);
        db.extend_from_slice(cert);
        std::fs::write(dir.path().join(secure_boot_db::DB_VAR), db).unwrap();
        dir
    }

    #[test]
    fn a_uki_for_this_slot_signed_with_a_db_key_is_accepted_and_others_are_refused() {
        let ours = [0x30u8; 80];
        let theirs = [0x31u8; 80];
        let vars = efivars(&ours);
        let expected = params(Slot::B);
        let cmdline = format!("console=ttyS0 quiet {}", expected.to_kernel_args());
        let good = uki::fixture(cmdline.as_bytes(), Some(&ours));
        check_uki(&good, &expected, vars.path()).unwrap();

        let wrong_key = uki::fixture(cmdline.as_bytes(), Some(&theirs));
        let err = check_uki(&wrong_key, &expected, vars.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not signed with a key in this box's Secure Boot db"),
            "{err}"
        );
        let unsigned = uki::fixture(cmdline.as_bytes(), None);
        assert!(check_uki(&unsigned, &expected, vars.path()).is_err());
        // With Secure Boot off nothing checks signatures at boot, and neither does this.
        let off = tempfile::tempdir().unwrap();
        check_uki(&unsigned, &expected, off.path()).unwrap();

        let for_a = format!("quiet {}", params(Slot::A).to_kernel_args());
        let err = check_uki(
            &uki::fixture(for_a.as_bytes(), Some(&ours)),
            &expected,
            vars.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("would boot carapace.slot=a"), "{err}");
        let err = check_uki(&uki::fixture(b"quiet", Some(&ours)), &expected, vars.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("carapace.slot"), "{err}");
    }

    #[test]
    fn the_bundle_names_of_ukis_are_recognised() {
        assert!(is_uki("carapace-a.efi") && is_uki("carapace-b.efi"));
        assert!(!is_uki("vmlinuz") && !is_uki("carapace.efi") && !is_uki("carapace-c.efi"));
    }
}
