//! The partitions a board's firmware reads, as FAT images for the disk: the ESP with
//! systemd-boot and slot A's entry (UEFI boards), or the Pi's config partition with
//! autoboot.txt and the two slots' boot partitions. Each comes with its SBOM lines.

use std::path::Path;

use board_support::board::{PiFirmwareBoot, SystemdBootLoader};
use board_support::boot_entry::render_loader_conf;

use crate::board::Board;
use crate::error::{Error, IoContext, Result};
use crate::esp::{EspFile, build_esp, first_slot_files};
use crate::fsutil::sha256_hex;
use crate::ids::derived_u32;
use crate::kmod::KernelTree;
use crate::layout::{DiskPlan, ESP_NAME, PI_BOOT_A_NAME, PI_BOOT_B_NAME, PI_CONFIG_NAME};
use crate::packages::PackageSet;
use crate::pi_boot;
use crate::recipe::Recipe;
use crate::rootfs::Origin;
use crate::sbom::SbomFile;

/// What slot A boots, whatever the flow.
pub struct SlotABoot<'a> {
    pub board: &'a Board,
    pub disk: &'a DiskPlan,
    pub recipe: &'a Recipe,
    pub version: &'a str,
    /// The whole kernel command line.
    pub cmdline: &'a str,
    pub vmlinuz: Vec<u8>,
    pub initrd: Vec<u8>,
    pub vmlinuz_origin: Origin,
}

pub struct BootPartitions {
    /// (partition name, its FAT image).
    pub images: Vec<(&'static str, Vec<u8>)>,
    pub sbom: Vec<SbomFile>,
}

impl BootPartitions {
    /// One FAT partition of `disk` with `files`, each from its origin.
    fn add(
        &mut self,
        recipe: &Recipe,
        disk: &DiskPlan,
        partition: &'static str,
        files: &[EspFile],
        origins: &[Origin],
    ) -> Result<()> {
        let volume_id = derived_u32(&recipe.name, &format!("{partition}-volume-id"));
        let image = build_esp(disk.partition(partition).size, volume_id, files)?;
        for (file, origin) in files.iter().zip(origins) {
            self.sbom.push(SbomFile {
                path: format!("{partition}:/{}", file.path),
                sha256: sha256_hex(&file.data),
                size: file.data.len() as u64,
                origin: origin.clone(),
            });
        }
        self.images.push((partition, image));
        Ok(())
    }
}

fn generated(recipe: &Recipe) -> Origin {
    crate::build::generated_by(&recipe.name)
}

/// The ESP: systemd-boot at the removable-media path, loader.conf, slot A's entry, kernel and
/// initrd.
pub fn uefi(
    loader: &SystemdBootLoader,
    debs: &PackageSet,
    slot: SlotABoot<'_>,
) -> Result<BootPartitions> {
    if !slot.recipe.boot.config_txt.is_empty() {
        return Err(Error::image(format!(
            "[boot] config_txt is for a Raspberry Pi's config.txt; board {} boots UEFI",
            slot.board.name
        )));
    }
    let loader_path = slot.board.architecture.uefi_removable_loader_path();
    let (efi_path, efi) = debs.find(loader.efi_file).ok_or_else(|| {
        Error::Package(format!("{} is not in {}", loader.efi_file, loader.package))
    })?;
    let efi_bytes = std::fs::read(&efi_path).context(|| format!("read {}", efi_path.display()))?;
    let mut files = vec![
        EspFile {
            path: loader_path.into(),
            data: efi_bytes,
        },
        EspFile {
            path: "loader/loader.conf".into(),
            data: render_loader_conf().into_bytes(),
        },
    ];
    files.extend(first_slot_files(
        slot.version,
        slot.cmdline,
        slot.vmlinuz,
        slot.initrd,
    ));
    let origins: Vec<Origin> = files
        .iter()
        .map(|f| {
            if f.path == loader_path {
                efi.origin()
            } else if f.path.ends_with("vmlinuz") {
                slot.vmlinuz_origin.clone()
            } else {
                generated(slot.recipe)
            }
        })
        .collect();
    // The ESP keeps the volume id it always had: UEFI images stay byte for byte what they were.
    let image = build_esp(
        slot.disk.first().size,
        derived_u32(&slot.recipe.name, "esp-volume-id"),
        &files,
    )?;
    let mut boot = BootPartitions {
        images: vec![(ESP_NAME, image)],
        sbom: Vec::new(),
    };
    for (file, origin) in files.iter().zip(origins) {
        boot.sbom.push(SbomFile {
            path: format!("esp:/{}", file.path),
            sha256: sha256_hex(&file.data),
            size: file.data.len() as u64,
            origin,
        });
    }
    Ok(boot)
}

/// p1 with autoboot.txt naming slot A, slot A's boot partition, and slot B's, formatted and
/// empty (the update service fills it; without config.txt the firmware never boots it).
pub fn pi(
    firmware: &PiFirmwareBoot,
    kernel: &KernelTree,
    origin_in_kernel: &dyn Fn(&Path) -> Option<Origin>,
    slot: SlotABoot<'_>,
) -> Result<BootPartitions> {
    let generated = generated(slot.recipe);
    let partition_number = |name: &str| {
        slot.disk
            .partitions
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| Error::image(format!("the Pi layout has no {name} partition")))
    };
    let mut device_trees = Vec::new();
    let mut dtb_origins = Vec::new();
    for name in firmware.device_trees {
        let path = kernel.device_tree(name)?;
        let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
        device_trees.push((name.to_string(), bytes));
        dtb_origins.push(origin_in_kernel(&path).unwrap_or_else(|| generated.clone()));
    }
    let slot_files = pi_boot::slot_files(pi_boot::SlotBoot {
        version: slot.version,
        cmdline: slot.cmdline,
        vmlinuz: slot.vmlinuz,
        initrd: slot.initrd,
        device_trees,
        extra_config: &slot.recipe.boot.config_txt,
    });
    let mut dtbs = dtb_origins.into_iter();
    let slot_origins: Vec<Origin> = slot_files
        .iter()
        .map(|f| match f.path.as_str() {
            pi_boot::KERNEL_FILE => slot.vmlinuz_origin.clone(),
            p if p.ends_with(".dtb") => dtbs.next().unwrap_or_else(|| generated.clone()),
            _ => generated.clone(),
        })
        .collect();
    let config_files = pi_boot::config_partition_files(partition_number(PI_BOOT_A_NAME)?);
    let mut boot = BootPartitions {
        images: Vec::new(),
        sbom: Vec::new(),
    };
    let (recipe, disk) = (slot.recipe, slot.disk);
    boot.add(recipe, disk, PI_CONFIG_NAME, &config_files, &[generated])?;
    boot.add(recipe, disk, PI_BOOT_A_NAME, &slot_files, &slot_origins)?;
    boot.add(recipe, disk, PI_BOOT_B_NAME, &[], &[])?;
    Ok(boot)
}
