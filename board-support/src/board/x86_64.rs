//! The x86-64 board: UEFI mini PCs and QEMU's q35 with OVMF. One description covers both
//! because the initramfs carries the drivers of every disk such a box boots from.

use super::{
    Architecture, Board, BootFlow, DebianKernel, KernelSource, QemuMachine, QemuSecureBoot,
    SystemdBootLoader,
};

pub const X86_64: Board = Board {
    name: "x86-64",
    architecture: Architecture::X86_64,
    kernel: KernelSource::Debian(DebianKernel {
        metapackage: "linux-image-amd64",
        backports: false,
        parts: &[],
    }),
    boot_flow: BootFlow::UefiSystemdBoot(SystemdBootLoader {
        package: "systemd-boot-efi",
        efi_file: "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        uki_stub: "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
    }),
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
        // The firmware's variables (the SecureBoot state the disk helper reports).
        "efivarfs",
    ],
    console: "ttyS0,115200",
    default_esp_mib: 256,
    default_root_mib: 1024,
    default_data_mib: 64,
    qemu: QemuMachine {
        system_binary: "qemu-system-x86_64",
        system_package: "qemu-system-x86",
        machine_type: "q35",
        // Under TCG (QEMU 7.2), a VEX-encoded instruction costs several times its SSE form:
        // the same sentence's embedding took 33.5 s with "max", 19 s without FMA and 4 s
        // without AVX, and the agent test's voice note ran past agentd's 20 minutes. The
        // inference kernels pick SSE at run time; an x86-64 box without AVX is a real one.
        tcg_cpu: "max,-avx,-avx2,-fma,-f16c",
        kvm_cpu: "host",
        firmware_code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
        firmware_vars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
        secure_boot: Some(QemuSecureBoot {
            firmware_code: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
            vars_template: "/usr/share/OVMF/OVMF_VARS_4M.fd",
            smm: true,
        }),
        tpm_device: "tpm-tis",
        firmware_package: "ovmf",
        watchdog_device: "i6300esb",
    },
};
