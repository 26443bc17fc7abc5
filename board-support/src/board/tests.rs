//! Every board description agrees with itself: its root partition type, boot loader, Rust
//! target and emulator all belong to its architecture, and its firmware files exist wherever
//! the firmware package is installed.

use super::*;

/// What each architecture's names look like, written out independently of
/// [`Architecture`]'s methods (the root types from the Discoverable Partitions Specification).
struct Expected {
    architecture: Architecture,
    root_partition_type: &'static str,
    /// In systemd-boot's file name (systemd-boot<this>.efi).
    efi_suffix: &'static str,
    qemu_system_binary: &'static str,
    /// The Rust target's and the multiarch directory's first component.
    cpu: &'static str,
}

const EXPECTED: &[Expected] = &[
    Expected {
        architecture: Architecture::X86_64,
        root_partition_type: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        efi_suffix: "x64",
        qemu_system_binary: "qemu-system-x86_64",
        cpu: "x86_64",
    },
    Expected {
        architecture: Architecture::Arm64,
        root_partition_type: "b921b045-1df0-41c3-af44-4c6f280d3fae",
        efi_suffix: "aa64",
        qemu_system_binary: "qemu-system-aarch64",
        cpu: "aarch64",
    },
];

fn expected(architecture: Architecture) -> &'static Expected {
    EXPECTED
        .iter()
        .find(|e| e.architecture == architecture)
        .unwrap_or_else(|| panic!("no expectations written for {architecture:?}"))
}

#[test]
fn every_architecture_has_its_specified_names() {
    for e in EXPECTED {
        let arch = e.architecture;
        assert_eq!(
            arch.root_partition_type(),
            e.root_partition_type,
            "{arch:?}"
        );
        assert!(arch.rust_target().starts_with(e.cpu), "{arch:?}");
        assert!(arch.multiarch().starts_with(e.cpu), "{arch:?}");
        assert_eq!(
            arch.uefi_removable_loader_path(),
            format!("EFI/BOOT/BOOT{}.EFI", e.efi_suffix.to_uppercase()),
            "{arch:?}"
        );
    }
}

#[test]
fn every_board_is_consistent_with_its_architecture() {
    for board in BOARDS {
        let e = expected(board.architecture);
        let name = board.name;
        assert_eq!(
            board.architecture.root_partition_type(),
            e.root_partition_type,
            "{name}"
        );
        assert_eq!(board.qemu.system_binary, e.qemu_system_binary, "{name}");
        match &board.boot_flow {
            BootFlow::UefiSystemdBoot(loader) => {
                assert!(
                    loader
                        .efi_file
                        .ends_with(&format!("/systemd-boot{}.efi", e.efi_suffix)),
                    "{name}: {}",
                    loader.efi_file
                );
                assert!(
                    !loader.efi_file.starts_with('/'),
                    "{name}: package-relative"
                );
            }
            BootFlow::PiTryboot(firmware) => {
                assert_eq!(board.architecture, Architecture::Arm64, "{name}");
                // An uncompressed arm64 Image is ~50 MiB; two must never be needed at once,
                // but one with its initramfs must fit.
                assert!(firmware.slot_boot_mib >= 128, "{name}");
                assert!(!firmware.device_trees.is_empty(), "{name}");
                for dtb in firmware.device_trees {
                    assert!(dtb.ends_with(".dtb") && !dtb.contains('/'), "{name}: {dtb}");
                }
            }
        }
        assert!(board.default_esp_mib >= 33, "{name}: FAT32 needs 33 MiB");
        assert!(!board.initramfs_modules.is_empty(), "{name}");
    }
}

#[test]
fn every_boards_firmware_exists_where_its_package_is_installed() {
    for board in BOARDS {
        let qemu = &board.qemu;
        // dpkg's file list: present exactly while the package is installed.
        let installed = std::path::Path::new(&format!(
            "/var/lib/dpkg/info/{}.list",
            qemu.firmware_package
        ))
        .exists();
        if !installed {
            eprintln!(
                "{}: {} is not installed here",
                board.name, qemu.firmware_package
            );
            continue;
        }
        for file in [qemu.firmware_code, qemu.firmware_vars] {
            assert!(
                std::path::Path::new(file).is_file(),
                "{}: {file} is missing although {} is installed",
                board.name,
                qemu.firmware_package
            );
        }
    }
}

#[test]
fn boards_are_found_by_name_and_names_are_unique() {
    for board in BOARDS {
        assert_eq!(find(board.name), Some(board));
        assert_eq!(BOARDS.iter().filter(|b| b.name == board.name).count(), 1);
    }
    assert_eq!(find("pi4"), None);
    assert!(known_names().contains("x86-64"));
}
