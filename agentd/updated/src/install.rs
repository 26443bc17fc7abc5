//! Writing an update into the slot the box is not running, in an order that a power cut at any
//! point leaves bootable:
//!
//! ```text
//! 1. retire the other slot's entry        nothing boots the other slot from here on
//! 2. write its root partition             chunk by chunk (or from a patch), checked; whole hash
//! 3. write its kernel and initrd          <esp>/<slot>/vmlinuz.new → fsync → rename
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
use std::io::{BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use board_support::boot_entry::{ESP_MOUNT_POINT, slot_boot_dir};
use board_support::slot_devices::{SLOT_DEVICES_PATH, SlotDevices};
use board_support::{BootControl, BootParams, Slot};
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
        for file in &manifest.boot {
            let path = self.boot_dir(self.booted).join(&file.path);
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

    boot.retire(target)?;

    let artifacts = manifest.artifacts();
    for artifact in &artifacts {
        match artifact.boot_path {
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
            Some(name) => {
                let path = slots.boot_dir(target).join(name);
                // A Pi's overlays/ folder, or the slot's folder on the ESP.
                let dir = path.parent().unwrap_or(slots.boot_dir(target));
                std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
                let temporary = slots.boot_dir(target).join(format!("{name}.new"));
                let file = File::create(&temporary).map_err(Error::io("create", &temporary))?;
                let mut writer = BufWriter::with_capacity(1 << 20, &file);
                assemble(artifact, &plan, local, downloads, &mut writer)?;
                drop(writer);
                file.sync_all().map_err(Error::io("sync", &temporary))?;
                board_support::atomic_file::rename_durably(&temporary, &path)
                    .map_err(Error::io("rename", &temporary))?;
            }
        }
    }

    let new_params = BootParams {
        slot: target,
        root_partuuid: slots.target_partuuid.clone(),
        data_partuuid: params.data_partuuid.clone(),
        esp_partuuid: params.esp_partuuid.clone(),
        verity: manifest.verity_params(),
    };
    boot.install_trial(
        target,
        manifest.version.as_str(),
        &manifest.command_line(&new_params),
    )?;
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
