//! How a board's firmware reaches a slot's kernel, and therefore how a trial boot is counted
//! and committed; the builder writes the boot files this flow needs, and
//! [`crate::BootControl`] has one implementation per flow.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFlow {
    /// UEFI firmware starts systemd-boot from the ESP's removable-media path; systemd-boot
    /// counts down a trial entry's tries (`carapace-a+3.conf`) and falls back to the other
    /// slot when they run out ([`crate::SystemdBoot`]).
    UefiSystemdBoot(SystemdBootLoader),
    /// The Raspberry Pi 5's EEPROM firmware: p1 holds only autoboot.txt, which names the boot
    /// partition of the committed slot and of the one tryboot (`[tryboot]`); each slot has its
    /// own FAT boot partition with config.txt, cmdline.txt, the kernel, the initramfs and the
    /// device trees ([`crate::PiTryboot`]; docs/boot-contract.md, "Raspberry Pi 5").
    PiTryboot(PiFirmwareBoot),
}

/// Where systemd-boot comes from for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdBootLoader {
    /// The Debian package that ships it.
    pub package: &'static str,
    /// Its file inside `package`.
    pub efi_file: &'static str,
    /// systemd's EFI stub in the same package: with the kernel, initramfs and command line
    /// added as sections it is a slot's unified kernel image under Secure Boot
    /// (image/src/uki.rs).
    pub uki_stub: &'static str,
}

/// What the Pi firmware needs from each slot's boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiFirmwareBoot {
    /// Each slot's FAT boot partition, MiB. Frozen once boxes ship (image/src/layout.rs).
    pub slot_boot_mib: u64,
    /// The device trees copied from the kernel's dtb directory to the root of each boot
    /// partition, by their file names there. The firmware loads the one its board name picks
    /// unless config.txt's `device_tree=` names another.
    pub device_trees: &'static [&'static str],
    /// How a trial's one boot starts with the board's kernel: the firmware's tryboot flag
    /// needs Raspberry Pi's kernel; Debian's has no notifier for it and kexecs instead
    /// (docs/boot-contract.md, "Without the tryboot notifier").
    pub trial_start: crate::PiTrialStart,
}

impl BootFlow {
    /// The Debian package that carries the boot loader, if the flow has one: every image of
    /// the board needs it. The Pi's loader is in its EEPROM.
    pub fn package(&self) -> Option<&'static str> {
        match self {
            BootFlow::UefiSystemdBoot(loader) => Some(loader.package),
            BootFlow::PiTryboot(_) => None,
        }
    }
}
