//! The facts that follow from a board's instruction set alone, so two boards of one
//! architecture (a Pi 5 and a Jetson Orin, say) cannot disagree about them: Debian's
//! architecture and multiarch directory, the Rust target, the root partition's type GUID and
//! the path where UEFI firmware looks for a removable disk's boot loader.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    /// Debian's name for it (APT::Architecture).
    pub fn debian_arch(self) -> &'static str {
        match self {
            Architecture::X86_64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// Debian's multiarch library directory (/usr/lib/<this>).
    pub fn multiarch(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-linux-gnu",
            Architecture::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// Rust's name for the CPU (`std::env::consts::ARCH` on it).
    pub fn rust_arch(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "aarch64",
        }
    }

    /// The Rust target our binaries are built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64-unknown-linux-gnu",
            Architecture::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's C cross compiler for this architecture (the linker of a cross build, and the
    /// compiler of the C inside crates such as ring), and its package.
    pub fn cross_gcc(self) -> (&'static str, &'static str) {
        match self {
            Architecture::X86_64 => ("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu"),
            Architecture::Arm64 => ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        }
    }

    /// The root partition's type GUID from the Discoverable Partitions Specification: the
    /// root slots carry it, so tools that know the specification recognise them.
    pub fn root_partition_type(self) -> &'static str {
        match self {
            Architecture::X86_64 => "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            Architecture::Arm64 => "b921b045-1df0-41c3-af44-4c6f280d3fae",
        }
    }

    /// Where UEFI firmware looks for the boot loader of a disk with no boot entries of its
    /// own (the UEFI specification's removable-media path), relative to the ESP's root.
    pub fn uefi_removable_loader_path(self) -> &'static str {
        match self {
            Architecture::X86_64 => "EFI/BOOT/BOOTX64.EFI",
            Architecture::Arm64 => "EFI/BOOT/BOOTAA64.EFI",
        }
    }
}
