//! The generic arm64 board: UEFI machines (QEMU's virt with AAVMF, servers and boards with
//! EDK2 firmware) booting systemd-boot from the ESP, with Debian's arm64 kernel. The Pi 5 and
//! the Jetson reuse its architecture but bring their own boot chains.

use super::{
    Architecture, Board, BootFlow, DebianKernel, KernelSource, QemuMachine, QemuSecureBoot,
    SystemdBootLoader,
};

pub const ARM64: Board = Board {
    name: "arm64",
    architecture: Architecture::Arm64,
    kernel: KernelSource::Debian(DebianKernel {
        metapackage: "linux-image-arm64",
        backports: false,
        parts: &[],
    }),
    boot_flow: BootFlow::UefiSystemdBoot(SystemdBootLoader {
        package: "systemd-boot-efi",
        efi_file: "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
        uki_stub: "usr/lib/systemd/boot/efi/linuxaa64.efi.stub",
    }),
    initramfs_modules: &[
        // First: libcrc32c (erofs, ext4) asks the crypto API for "crc32c" when it loads.
        "crc32c_generic",
        "virtio_pci",
        "virtio_blk",
        "virtio_scsi",
        "sd_mod",
        "nvme",
        "ahci",
        "ahci_platform",
        "xhci_pci",
        "xhci_plat_hcd",
        "usb_storage",
        "uas",
        "mmc_block",
        "sdhci_pci",
        "dm_verity",
        "erofs",
        "ext4",
        "vfat",
        // The firmware's variables (the SecureBoot state the disk helper reports).
        "efivarfs",
    ],
    // The virt machine's PL011 UART, and that of most arm64 boards.
    console: "ttyAMA0,115200",
    default_esp_mib: 256,
    default_root_mib: 1024,
    default_data_mib: 64,
    qemu: QemuMachine {
        system_binary: "qemu-system-aarch64",
        system_package: "qemu-system-arm",
        machine_type: "virt",
        // Under TCG, "max" emulates pointer authentication with QARMA, which costs more
        // than the rest of a boot; the A72 is what a Pi 4 or a cheap arm64 box has anyway.
        tcg_cpu: "cortex-a72",
        kvm_cpu: "host",
        firmware_code: "/usr/share/AAVMF/AAVMF_CODE.fd",
        firmware_vars: "/usr/share/AAVMF/AAVMF_VARS.fd",
        // Debian builds AAVMF with Secure Boot in: its .ms and .snakeoil variants are this
        // code with keys in the variables.
        secure_boot: Some(QemuSecureBoot {
            firmware_code: "/usr/share/AAVMF/AAVMF_CODE.fd",
            vars_template: "/usr/share/AAVMF/AAVMF_VARS.ms.fd",
            smm: false,
        }),
        // QEMU's only TPM on virt. Debian's arm64 kernel has no driver for it (TCG_TIS is
        // off; it has CRB for ACPI servers and the SPI and I2C TPMs of boards), so a machine
        // given one (`carapace run --tpm`) boots as a box without a TPM.
        tpm_device: "tpm-tis-device",
        firmware_package: "qemu-efi-aarch64",
        // A PCI device, so it works on virt as on q35; Debian's arm64 kernel has its driver.
        watchdog_device: "i6300esb",
    },
};
