//! NVIDIA Jetson Orin (AGX Orin, Orin NX, Orin Nano) on JetPack 6: NVIDIA's UEFI firmware in
//! the module's QSPI starts systemd-boot from the ESP like any arm64 UEFI machine, and boot
//! counting works as on x86-64. The kernel, its modules and the GPU's user space are NVIDIA's
//! (Linux_for_Tegra, from a directory the recipe's `[bsp]` names); the device tree is the one
//! the firmware carries, flashed with the same BSP release.

use super::{ARM64, Architecture, Board, BootFlow, KernelSource, SystemdBootLoader};

pub const JETSON_ORIN: Board = Board {
    name: "jetson-orin",
    architecture: Architecture::Arm64,
    kernel: KernelSource::VendorBsp,
    boot_flow: BootFlow::UefiSystemdBoot(SystemdBootLoader {
        package: "systemd-boot-efi",
        efi_file: "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
        uki_stub: "usr/lib/systemd/boot/efi/linuxaa64.efi.stub",
    }),
    // NVMe (the devkits' M.2 slots), the microSD and eMMC controllers, USB disks, then the
    // root's and /data's needs. L4T builds most of them in (its modules.builtin says which);
    // a name that is neither built in nor a module stops the build.
    initramfs_modules: &[
        "nvme",
        "sdhci_tegra",
        "mmc_block",
        "xhci_tegra",
        "usb_storage",
        "uas",
        "dm_verity",
        "erofs",
        "ext4",
        "vfat",
    ],
    // The Tegra Combined UART: the devkits' debug serial port.
    console: "ttyTCU0,115200",
    default_esp_mib: 256,
    default_root_mib: 1024,
    default_data_mib: 64,
    // No QEMU model of the Orin exists; the arm64 virt machine runs the same root's services,
    // not this kernel.
    qemu: ARM64.qemu,
};
