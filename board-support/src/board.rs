//! Everything that differs between the boards Carapace runs on, as data: the image builder
//! reads it to pick packages, build for the right target and lay out the disk, and the QEMU
//! harness (`carapace run`, the system tests, the bench) to start a machine of the board's
//! architecture with its firmware. A new board (Raspberry Pi 5, Jetson Orin, generic arm64
//! UEFI) is a new constant in [`BOARDS`] plus its recipes, not a fork of the builder.

mod architecture;
mod arm64;
mod boot_flow;
mod jetson_orin;
mod pi5;
mod qemu_machine;
mod x86_64;

pub use architecture::Architecture;
pub use arm64::ARM64;
pub use boot_flow::{BootFlow, PiFirmwareBoot, SystemdBootLoader};
pub use jetson_orin::JETSON_ORIN;
pub use pi5::PI5;
pub use qemu_machine::{QemuMachine, QemuSecureBoot};
pub use x86_64::X86_64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// What a recipe's `board =` names.
    pub name: &'static str,
    /// The instruction set: Debian architecture, Rust target, root partition type.
    pub architecture: Architecture,
    /// Where the kernel and its modules come from.
    pub kernel: KernelSource,
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

/// Where a board's kernel comes from, and what that kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSource {
    /// Debian's kernel: the metapackage whose single `linux-image-*` dependency is the kernel
    /// we ship. Its modules are signed by Debian, so the image enforces module signatures.
    Debian(DebianKernel),
    /// The vendor's board support package, from a directory the recipe's `[bsp]` names
    /// (NVIDIA's Linux_for_Tegra): its kernel image, its modules, its user space. Its modules
    /// carry no signature the kernel checks, so none is enforced (the chain of trust, issue
    /// 11, signs them).
    VendorBsp,
}

/// Which Debian kernel, from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebianKernel {
    pub metapackage: &'static str,
    /// From the release's -backports suite rather than the release: the newer kernel a board
    /// needs (the Pi 5's RP1, Ethernet, USB and watchdog arrived after trixie's 6.12). Only the
    /// kernel comes from there; every other package stays the release's.
    pub backports: bool,
    /// Since 7.x Debian splits a kernel: the versioned `linux-image-*` only depends on
    /// `linux-base-*` (device trees, modules.builtin), `linux-binary-*` (vmlinuz) and
    /// `linux-modules-*` of the same version. The prefixes of the parts to pin and unpack with
    /// it; empty for a kernel in one package.
    pub parts: &'static [&'static str],
}

impl KernelSource {
    /// The Debian kernel, if the kernel comes from Debian.
    pub fn debian(self) -> Option<DebianKernel> {
        match self {
            KernelSource::Debian(kernel) => Some(kernel),
            KernelSource::VendorBsp => None,
        }
    }

    /// The command line words that lock the kernel down: lockdown=integrity (no unsigned
    /// kexec, /dev/mem, or module parameters that poke hardware) and, for signed modules,
    /// module.sig_enforce=1 (modules are stored uncompressed, their appended signatures
    /// intact).
    pub fn lockdown_words(self) -> &'static str {
        match self {
            KernelSource::Debian { .. } => "lockdown=integrity module.sig_enforce=1",
            KernelSource::VendorBsp => "lockdown=integrity",
        }
    }
}

/// Every board an image can be built for.
pub const BOARDS: &[Board] = &[X86_64, ARM64, JETSON_ORIN, PI5];

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
