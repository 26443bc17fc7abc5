//! What the builder needs to know about each board: Debian architecture, Rust target, kernel
//! and boot loader packages, the modules that reach the root, and default partition sizes.

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Board {
    pub name: &'static str,
    /// Debian architecture (APT::Architecture).
    pub debian_arch: &'static str,
    pub rust_target: &'static str,
    /// Debian multiarch library directory.
    pub multiarch: &'static str,
    /// Metapackage whose single `linux-image-*` dependency is the kernel we ship.
    pub kernel_metapackage: &'static str,
    pub bootloader_package: &'static str,
    /// systemd-boot inside `bootloader_package`, and where UEFI firmware looks for it.
    pub bootloader_file: &'static str,
    pub bootloader_esp_path: &'static str,
    /// Everything between firmware and the root: virtio, NVMe, AHCI/SATA, USB storage,
    /// SD/MMC, dm-verity, erofs, ext4 (data) and vfat (ESP). Dependencies come from modinfo.
    pub initramfs_modules: &'static [&'static str],
    pub console: &'static str,
    pub default_esp_mib: u64,
    pub default_root_mib: u64,
    pub default_data_mib: u64,
}

const X86_64: Board = Board {
    name: "x86-64",
    debian_arch: "amd64",
    rust_target: "x86_64-unknown-linux-gnu",
    multiarch: "x86_64-linux-gnu",
    kernel_metapackage: "linux-image-amd64",
    bootloader_package: "systemd-boot-efi",
    bootloader_file: "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    bootloader_esp_path: "EFI/BOOT/BOOTX64.EFI",
    initramfs_modules: &[
        // First: libcrc32c (erofs, ext4) asks the crypto API for "crc32c" when it loads.
        "crc32c_generic",
        "virtio_blk",
        "virtio_scsi",
        "sd_mod",
        "nvme",
        "ahci",
        "xhci_pci",
        "usb_storage",
        "uas",
        "mmc_block",
        "sdhci_pci",
        "sdhci_acpi",
        "dm_verity",
        "erofs",
        "ext4",
        "vfat",
    ],
    console: "ttyS0,115200",
    // Sizes are frozen once boxes ship (the partitions are adjacent): see layout.rs for why.
    default_esp_mib: 256,
    default_root_mib: 1024,
    default_data_mib: 64,
};

const BOARDS: &[Board] = &[X86_64];

pub fn find(name: &str) -> Result<Board> {
    BOARDS
        .iter()
        .find(|b| b.name == name)
        .cloned()
        .ok_or_else(|| Error::UnknownBoard {
            board: name.to_string(),
            known: BOARDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", "),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_board_lists_the_known_ones() {
        let err = super::find("pi4").unwrap_err().to_string();
        assert!(err.contains("pi4") && err.contains("x86-64"), "{err}");
    }
}
