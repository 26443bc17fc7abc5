//! The QEMU machine that stands in for a board in development and tests: which emulator, which
//! machine and CPU model, which firmware, which watchdog. `carapace run`, the system tests and
//! the bench all start machines from it, so a board of another architecture brings its own.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuMachine {
    /// The emulator binary (qemu-system-<arch>).
    pub system_binary: &'static str,
    /// The Debian package that provides `system_binary`.
    pub system_package: &'static str,
    /// `-machine`.
    pub machine_type: &'static str,
    /// `-cpu` under TCG: a model the image runs on that QEMU emulates quickly.
    pub tcg_cpu: &'static str,
    /// `-cpu` under KVM: the host's own.
    pub kvm_cpu: &'static str,
    /// UEFI firmware code, mapped read-only as the first flash device.
    pub firmware_code: &'static str,
    /// The firmware's empty variable store: each machine boots a writable copy of it.
    pub firmware_vars: &'static str,
    /// The firmware's Secure Boot set-up (`carapace run --secure-boot`), where the package
    /// has one.
    pub secure_boot: Option<QemuSecureBoot>,
    /// The Debian package that provides both firmware files.
    pub firmware_package: &'static str,
    /// `-device` of a TPM 2.0 interface; QEMU connects it to a software TPM (swtpm) when a
    /// machine gets one (`carapace run --tpm`).
    pub tpm_device: &'static str,
    /// `-device` of a hardware watchdog whose driver the image ships; QEMU resets the machine
    /// when it fires (`-action watchdog=reset`), as a real board's watchdog would.
    pub watchdog_device: &'static str,
}

/// A firmware build that verifies what it starts against the keys in its variable store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuSecureBoot {
    pub firmware_code: &'static str,
    /// A formatted variable store that a Secure Boot build enrolls its keys into, replacing
    /// any the store holds (OVMF's empty one; AAVMF ships its empty store unformatted, so its
    /// copy with Microsoft's keys, which the build removes).
    pub vars_template: &'static str,
    /// Whether the firmware keeps its variables where only SMM code may write them (OVMF's
    /// secboot build on q35): the machine then gets `smm=on` and a secure flash device. virt
    /// has no SMM, and AAVMF keeps its variables in plain flash (a board's firmware keeps
    /// them in its secure world).
    pub smm: bool,
}
