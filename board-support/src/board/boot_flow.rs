//! How a board's firmware reaches a slot's kernel, and therefore how a trial boot is counted
//! and committed; the builder writes the boot files this flow needs, and
//! [`crate::BootControl`] has one implementation per flow.
//!
//! Only UEFI with systemd-boot is built today. Raspberry Pi 5's firmware tryboot (p1 holding
//! only autoboot.txt, boot-a/boot-b FAT partitions, commits by rewriting autoboot.txt) has its
//! BootControl implementation ([`crate::PiTryboot`], tested against a simulated firmware); it
//! becomes a variant here together with its disk layout, when a Pi image is built, not before.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFlow {
    /// UEFI firmware starts systemd-boot from the ESP's removable-media path; systemd-boot
    /// counts down a trial entry's tries (`carapace-a+3.conf`) and falls back to the other
    /// slot when they run out ([`crate::SystemdBoot`]).
    UefiSystemdBoot(SystemdBootLoader),
}

/// Where systemd-boot comes from for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdBootLoader {
    /// The Debian package that ships it.
    pub package: &'static str,
    /// Its file inside `package`.
    pub efi_file: &'static str,
}

impl BootFlow {
    /// The Debian package that carries the boot loader: every image of the board needs it.
    pub fn package(&self) -> &'static str {
        match self {
            BootFlow::UefiSystemdBoot(loader) => loader.package,
        }
    }
}
