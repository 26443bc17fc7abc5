//! The partitions a board's firmware reads, as FAT images for the disk: the ESP with
//! systemd-boot and slot A's entry (UEFI boards), or the Pi's config partition with
//! autoboot.txt and the two slots' boot partitions. Each comes with its SBOM lines.

use std::path::Path;

use board_support::Slot;
use board_support::board::SystemdBootLoader;
use board_support::boot_entry::{
    ENTRIES_DIR, EntryName, FIRST_GENERATION, UKI_FILE, render_loader_conf, render_uki_entry,
    slot_boot_dir,
};
use board_support::uki::bundle_name as uki_bundle_name;

use crate::board::Board;
use crate::error::{Error, IoContext, Result};
use crate::esp::{EspFile, build_esp, first_slot_files};
use crate::fsutil::sha256_hex;
use crate::ids::derived_u32;
use crate::kmod::KernelTree;
use crate::layout::{DiskPlan, ESP_NAME, PI_BOOT_A_NAME, PI_BOOT_B_NAME, PI_CONFIG_NAME};
use crate::packages::PackageSet;
use crate::pi_boot;
use crate::pi_signed_boot;
use crate::recipe::Recipe;
use crate::rootfs::Origin;
use crate::sbom::SbomFile;
use crate::secure_boot::SecureBootKeys;
use crate::uki::{self, UkiParts};
use board_support::boot_control::CMDLINE_FILE;
use board_support::boot_control::pi_config::CONFIG_FILE;

/// What slot A boots, whatever the flow.
pub struct SlotABoot<'a> {
    pub board: &'a Board,
    pub disk: &'a DiskPlan,
    pub recipe: &'a Recipe,
    pub version: &'a str,
    /// The whole kernel command line.
    pub cmdline: &'a str,
    /// Slot B's (another root partition): what its UKI carries on a Secure Boot image.
    pub cmdline_b: &'a str,
    pub vmlinuz: Vec<u8>,
    pub initrd: Vec<u8>,
    pub vmlinuz_origin: Origin,
    /// `uname -r` of the kernel (a UKI's .uname).
    pub kernel_release: &'a str,
    pub build_id: &'a str,
    /// Sign for Secure Boot: the ESP gets signed systemd-boot and the slot a signed UKI; a
    /// Pi's slot a signed boot.img.
    pub secure_boot: Option<&'a SecureBootKeys>,
    /// The build's fixed time (SOURCE_DATE_EPOCH): a Pi's boot.sig carries it.
    pub epoch: u64,
}

#[derive(Default)]
pub struct BootPartitions {
    /// (partition name, its FAT image).
    pub images: Vec<(&'static str, Vec<u8>)>,
    pub sbom: Vec<SbomFile>,
    /// What an update of the slot carries to the box: (path in the slot's boot directory or
    /// partition, bytes). The box writes the command line itself.
    pub slot_files: Vec<(String, Vec<u8>)>,
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
        // The ESP keeps the volume id and SBOM prefix it always had: UEFI images stay byte for
        // byte what they were.
        let (seed, prefix) = if partition == ESP_NAME {
            ("esp-volume-id".to_string(), "esp")
        } else {
            (format!("{partition}-volume-id"), partition)
        };
        let image = build_esp(
            disk.partition(partition).size,
            derived_u32(&recipe.name, &seed),
            files,
        )?;
        for (file, origin) in files.iter().zip(origins) {
            self.sbom.push(SbomFile {
                path: format!("{prefix}:/{}", file.path),
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
    if let Some(keys) = slot.secure_boot {
        return signed_uefi(loader, debs, &slot, keys, (efi_bytes, efi.origin()));
    }
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
    let slot_files = crate::slot_files::BOOT_FILES
        .iter()
        .map(|name| name.to_string())
        .zip([slot.vmlinuz.clone(), slot.initrd.clone()])
        .collect();
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
    let mut boot = BootPartitions {
        slot_files,
        ..BootPartitions::default()
    };
    boot.add(slot.recipe, slot.disk, ESP_NAME, &files, &origins)?;
    Ok(boot)
}

/// The ESP of a Secure Boot image: systemd-boot signed with db's key, and slot A's signed UKI
/// with an entry that only names it (docs/boot-contract.md, "Secure Boot").
fn signed_uefi(
    loader: &SystemdBootLoader,
    debs: &PackageSet,
    slot: &SlotABoot<'_>,
    keys: &SecureBootKeys,
    (loader_bytes, loader_origin): (Vec<u8>, Origin),
) -> Result<BootPartitions> {
    let (stub_path, _) = debs.find(loader.uki_stub).ok_or_else(|| {
        Error::Package(format!("{} is not in {}", loader.uki_stub, loader.package))
    })?;
    let stub = std::fs::read(&stub_path).context(|| format!("read {}", stub_path.display()))?;
    let os_release = os_release(slot.recipe, slot.version, slot.build_id);
    // One UKI per slot: each carries its own slot's command line (its root partition), signed.
    let signed_uki = |cmdline: &str| {
        let unsigned = uki::assemble(
            &stub,
            &UkiParts {
                os_release: os_release.as_bytes(),
                cmdline,
                kernel_release: slot.kernel_release,
                initrd: &slot.initrd,
                linux: &slot.vmlinuz,
            },
        )?;
        keys.sign(&unsigned, "uki")
    };
    let uki = signed_uki(slot.cmdline)?;
    let uki_b = signed_uki(slot.cmdline_b)?;
    let loader_path = slot.board.architecture.uefi_removable_loader_path();
    let dir = slot_boot_dir(Slot::A);
    let files = [
        EspFile {
            path: loader_path.into(),
            data: keys.sign(&loader_bytes, "systemd-boot")?,
        },
        EspFile {
            path: "loader/loader.conf".into(),
            data: render_loader_conf().into_bytes(),
        },
        EspFile {
            path: format!(
                "{ENTRIES_DIR}/{}",
                EntryName::committed(Slot::A).file_name()
            ),
            data: render_uki_entry(Slot::A, FIRST_GENERATION, slot.version).into_bytes(),
        },
        EspFile {
            path: format!("{dir}/{UKI_FILE}"),
            data: uki.clone(),
        },
    ];
    let origins = [
        loader_origin,
        generated(slot.recipe),
        generated(slot.recipe),
        generated(slot.recipe),
    ];
    // An update carries both, and the box installs the one for the slot it writes.
    let mut boot = BootPartitions {
        slot_files: vec![
            (uki_bundle_name(Slot::A), uki),
            (uki_bundle_name(Slot::B), uki_b),
        ],
        ..BootPartitions::default()
    };
    boot.add(slot.recipe, slot.disk, ESP_NAME, &files, &origins)?;
    Ok(boot)
}

/// The UKI's .osrel: what systemd-boot shows and tools read of the image it boots.
fn os_release(recipe: &Recipe, version: &str, build_id: &str) -> String {
    let quoted = |value: &str| value.replace(['"', '\\', '$', '`'], "");
    format!(
        "NAME=Carapace\nID=carapace\nPRETTY_NAME=\"Carapace {}\"\nVERSION_ID=\"{}\"\n\
         IMAGE_ID=\"{}\"\nIMAGE_VERSION=\"{}\"\nBUILD_ID=\"{}\"\n",
        quoted(version),
        quoted(version),
        quoted(&recipe.name),
        quoted(version),
        quoted(build_id)
    )
}

/// Which device trees a Pi boot partition gets.
pub enum PiDeviceTrees {
    /// These, by file name, from Debian's kernel (the board's list).
    Board(&'static [&'static str]),
    /// Raspberry Pi's kernel: every bcm2712*.dtb and the whole overlays/ folder, which its
    /// firmware needs to boot a D0 board (overlay_map.dtb, bcm2712d0.dtbo).
    VendorKernel,
}

/// What Raspberry Pi's firmware cannot boot a Pi 5 without.
const VENDOR_REQUIRED: [&str; 3] = [
    "bcm2712-rpi-5-b.dtb",
    "overlays/overlay_map.dtb",
    "overlays/bcm2712d0.dtbo",
];

/// (name on the boot partition, file) for every device tree and overlay to copy.
fn device_tree_files(
    trees: PiDeviceTrees,
    kernel: &KernelTree,
) -> Result<Vec<(String, std::path::PathBuf)>> {
    let name_of = |path: &Path| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match trees {
        PiDeviceTrees::Board(names) => names
            .iter()
            .map(|name| Ok((name.to_string(), kernel.device_tree(name)?)))
            .collect(),
        PiDeviceTrees::VendorKernel => {
            let mut files: Vec<(String, std::path::PathBuf)> = kernel
                .device_trees_named("bcm2712")
                .into_iter()
                .map(|p| (name_of(&p), p))
                .collect();
            if let Some(dir) = kernel.overlays_dir() {
                let mut overlays: Vec<_> = std::fs::read_dir(&dir)
                    .context(|| format!("read {}", dir.display()))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .map(|p| (format!("overlays/{}", name_of(&p)), p))
                    .collect();
                overlays.sort();
                files.extend(overlays);
            }
            for required in VENDOR_REQUIRED {
                if !files.iter().any(|(name, _)| name == required) {
                    return Err(Error::PiKernel(format!(
                        "kernel {} has no {required}, which the Pi 5's firmware needs",
                        kernel.release
                    )));
                }
            }
            Ok(files)
        }
    }
}

/// p1 with autoboot.txt naming slot A, slot A's boot partition, and slot B's, formatted and
/// empty (the update service fills it; without config.txt the firmware never boots it).
pub fn pi(
    trees: PiDeviceTrees,
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
    for (name, path) in device_tree_files(trees, kernel)? {
        let bytes = std::fs::read(&path).context(|| format!("read {}", path.display()))?;
        device_trees.push((name, bytes));
        dtb_origins.push(origin_in_kernel(&path).unwrap_or_else(|| generated.clone()));
    }
    let slot_files = pi_boot::slot_files(pi_slot_boot(&slot, slot.cmdline, device_trees.clone()));
    let mut dtbs = dtb_origins.into_iter();
    let slot_origins: Vec<Origin> = slot_files
        .iter()
        .map(|f| match f.path.as_str() {
            pi_boot::KERNEL_FILE => slot.vmlinuz_origin.clone(),
            p if p.ends_with(".dtb") || p.starts_with("overlays/") => {
                dtbs.next().unwrap_or_else(|| generated.clone())
            }
            _ => generated.clone(),
        })
        .collect();
    let config_files = pi_boot::config_partition_files(partition_number(PI_BOOT_A_NAME)?);
    let (recipe, disk) = (slot.recipe, slot.disk);
    let mut boot = BootPartitions::default();
    boot.add(
        recipe,
        disk,
        PI_CONFIG_NAME,
        &config_files,
        std::slice::from_ref(&generated),
    )?;
    match slot.secure_boot {
        None => {
            boot.slot_files = slot_files
                .iter()
                .filter(|f| f.path != CMDLINE_FILE)
                .map(|f| (f.path.clone(), f.data.clone()))
                .collect();
            boot.add(recipe, disk, PI_BOOT_A_NAME, &slot_files, &slot_origins)?;
        }
        Some(keys) => {
            // Each slot's boot.img signs its own command line (its root partition); slot B's
            // waits in the slot files for an update.
            let sign = |files: &[EspFile], for_slot: Slot| {
                let seed = format!("boot-img-{}-volume-id", for_slot.letter());
                let volume_id = derived_u32(&recipe.name, &seed);
                pi_signed_boot::sign(files, volume_id, slot.epoch, keys)
            };
            let signed_a = sign(&slot_files, Slot::A)?;
            let files_b = pi_boot::slot_files(pi_slot_boot(&slot, slot.cmdline_b, device_trees));
            let signed_b = sign(&files_b, Slot::B)?;
            eprintln!(
                "carapace: {} for the Pi 5's signed boot: {} MiB (its firmware holds it in memory)",
                pi_signed_boot::BOOT_IMAGE,
                signed_a.image.len() >> 20
            );
            for (signed, for_slot) in [(&signed_a, Slot::A), (&signed_b, Slot::B)] {
                let [image, signature] = pi_signed_boot::slot_file_names(for_slot);
                boot.slot_files.push((image, signed.image.clone()));
                boot.slot_files.push((signature, signed.signature.clone()));
            }
            boot.slot_files.push((
                CONFIG_FILE.into(),
                pi_signed_boot::outer_config_txt(slot.version).into_bytes(),
            ));
            // What boot.img holds, by origin, as "boot-a:/boot.img:/vmlinuz".
            let inside = format!("{PI_BOOT_A_NAME}:/{}:", pi_signed_boot::BOOT_IMAGE);
            for (file, origin) in slot_files.iter().zip(&slot_origins) {
                boot.sbom.push(SbomFile {
                    path: format!("{inside}/{}", file.path),
                    sha256: sha256_hex(&file.data),
                    size: file.data.len() as u64,
                    origin: origin.clone(),
                });
            }
            let files = pi_signed_boot::partition_files(slot.version, slot.cmdline, signed_a);
            let origins = vec![generated.clone(); files.len()];
            boot.add(recipe, disk, PI_BOOT_A_NAME, &files, &origins)?;
        }
    }
    boot.add(recipe, disk, PI_BOOT_B_NAME, &[], &[])?;
    Ok(boot)
}

/// A Pi slot's boot files with `cmdline` (slot A's or slot B's).
fn pi_slot_boot<'a>(
    slot: &'a SlotABoot<'_>,
    cmdline: &'a str,
    device_trees: Vec<(String, Vec<u8>)>,
) -> pi_boot::SlotBoot<'a> {
    pi_boot::SlotBoot {
        version: slot.version,
        cmdline,
        vmlinuz: slot.vmlinuz.clone(),
        initrd: slot.initrd.clone(),
        device_trees,
        extra_config: &slot.recipe.boot.config_txt,
    }
}
