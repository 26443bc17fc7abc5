//! Raspberry Pi 5 (with or without an AI HAT+): the EEPROM firmware boots a slot's FAT boot
//! partition as autoboot.txt on p1 says, and a trial is one boot that any reset leaves. The
//! kernel is Debian's from trixie-backports (7.x: the first with the Pi 5's PCIe, RP1, Ethernet, USB,
//! SD and watchdog in its device tree); the same kernel boots QEMU's virt, which stands in
//! for the board in tests, so the initramfs carries virtio too. Debian's kernel cannot set the
//! firmware's tryboot flag, so a trial is started by kexec.

use super::{ARM64, Architecture, Board, BootFlow, DebianKernel, KernelSource, PiFirmwareBoot};
use crate::boot_control::PiTrialStart;

pub const PI5: Board = Board {
    name: "pi5",
    architecture: Architecture::Arm64,
    kernel: KernelSource::Debian(DebianKernel {
        metapackage: "linux-image-arm64",
        backports: true,
        parts: &["linux-base", "linux-binary", "linux-modules"],
    }),
    boot_flow: BootFlow::PiTryboot(PiFirmwareBoot {
        // Debian's arm64 kernel is an uncompressed Image (~50 MiB) and the initramfs a few
        // MiB; 256 MiB leaves room for a kernel twice that size and for firmware files.
        slot_boot_mib: 256,
        // The firmware's own name for the C0 stepping (4 and 8 GB boards before 2025), and
        // upstream's for D0 (2 and 16 GB, later 4 and 8 GB), which config.txt's device_tree=
        // selects (docs/boards.md says when).
        device_trees: &["bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"],
        trial_start: PiTrialStart::Kexec,
    }),
    initramfs_modules: &[
        // The microSD slot: the SoC's SDHCI.
        "sdhci_brcmstb",
        "mmc_block",
        // NVMe on the PCIe connector (an M.2 HAT).
        "nvme",
        // USB disks: the USB ports are on RP1, the south bridge behind PCIe.
        "rp1_pci",
        "clk_rp1",
        "pinctrl_rp1",
        "dwc3",
        "xhci_plat_hcd",
        "usb_storage",
        "uas",
        // QEMU's virt machine, the board's stand-in in tests.
        "virtio_pci",
        "virtio_blk",
        "dm_verity",
        "erofs",
        "ext4",
        "vfat",
    ],
    // The debug UART (the 3-pin JST connector): serial10 in the device tree.
    console: "ttyAMA10,115200",
    // p1, which holds autoboot.txt and the owner's settings; the slots' boot partitions are
    // `slot_boot_mib` each.
    default_esp_mib: 64,
    default_root_mib: 1024,
    default_data_mib: 64,
    // QEMU has no Pi 5. The virt machine boots the image's kernel, initramfs and command line
    // from the boot partition autoboot.txt names, as the firmware would
    // (carapace_image::qemu::pi_firmware_stand_in).
    qemu: ARM64.qemu,
};
