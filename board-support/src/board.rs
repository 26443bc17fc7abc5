//! Everything that differs between the boards Carapace runs on, as data: the image builder
//! reads it to pick packages, build for the right target and lay out the disk, and the QEMU
//! harness (`carapace run`, the system tests, the bench) to start a machine of the board's
//! architecture with its firmware. A new board (Raspberry Pi 5, Jetson Orin, generic arm64
//! UEFI) is a new constant in [`BOARDS`] plus its recipes, not a fork of the builder.

mod architecture;
mod arm64;
mod boot_flow;
mod qemu_machine;
mod x86_64;

pub use architecture::Architecture;
pub use arm64::ARM64;
pub use boot_flow::{BootFlow, SystemdBootLoader};
pub use qemu_machine::QemuMachine;
pub use x86_64::X86_64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// What a recipe's `board =` names.
    pub name: &'static str,
    /// The instruction set: Debian architecture, Rust target, root partition type.
    pub architecture: Architecture,
    /// Metapackage whose single `linux-image-*` dependency is the kernel we ship.
    pub kernel_metapackage: &'static str,
    /// How firmware finds a slot's kernel and how a trial boot is counted.
    pub boot_flow: BootFlow,
    /// Everything between firmware and the root: storage controllers, dm-verity, erofs, ext4
    /// (data) and vfat (ESP). Their dependencies come from modinfo.
    pub initramfs_modules: &'static [&'static str],
    /// The serial console, as the kernel's `console=` takes it.
    pub console: &'static str,
    /// Partition sizes when the recipe names none. Frozen once boxes ship (the partitions are
    /// adjacent): image/src/layout.rs says why they are this large.
    pub default_esp_mib: u64,
    pub default_root_mib: u64,
    pub default_data_mib: u64,
    /// The QEMU machine that boots this board's images in development and tests.
    pub qemu: QemuMachine,
}

/// Every board an image can be built for.
pub const BOARDS: &[Board] = &[X86_64, ARM64];

/// The board a recipe names, if there is one.
pub fn find(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|board| board.name == name)
}

/// The known boards' names, for an error message.
pub fn known_names() -> String {
    BOARDS
        .iter()
        .map(|board| board.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
