//! What the chain of trust verified for this boot, said on the console before /data opens:
//! whether the firmware ran with Secure Boot on (so systemd-boot and the slot's unified kernel
//! image, with the command line that pins the root's verity hash, were checked against the
//! enrolled keys) and the kernel's lockdown level.
//!
//! The helper mounts the two kernel file systems that tell, for itself and every later reader:
//! securityfs (/sys/kernel/security/lockdown) and, on a UEFI boot, efivarfs read-only (the
//! SecureBoot variable). Nothing on the box writes firmware variables.

use std::path::Path;

use board_support::atomic_file;
use board_support::secure_boot_db::{self, EFIVARS};
use board_support::trust_state::{DataProtection, TRUST_STATE, TrustState};
use rustix::mount::MountFlags;

const SECURITYFS: &str = "/sys/kernel/security";
const EFI_DIR: &str = "/sys/firmware/efi";

/// What the firmware and the kernel verified on this boot.
pub struct Verified {
    pub secure_boot: &'static str,
    pub lockdown: String,
}

/// The console line (after `carapace-disk: `).
impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trust secure-boot={} lockdown={}",
            self.secure_boot, self.lockdown
        )
    }
}

pub fn verified() -> Verified {
    mount_if_missing("securityfs", SECURITYFS, MountFlags::empty());
    let uefi = Path::new(EFI_DIR).is_dir();
    let secure_boot = if !uefi {
        "no-uefi"
    } else if !mount_if_missing("efivarfs", EFIVARS, MountFlags::RDONLY) {
        "unknown"
    } else {
        match secure_boot_db::secure_boot_on(Path::new(EFIVARS)) {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        }
    };
    let lockdown = std::fs::read_to_string(Path::new(SECURITYFS).join("lockdown"))
        .ok()
        .and_then(|text| lockdown_level(&text).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    Verified {
        secure_boot,
        lockdown,
    }
}

/// Writes what agentd's `/status` says of the box's trust (board_support::trust_state).
pub fn record(verified: Verified, tpm: bool, data: DataProtection) {
    let state = TrustState {
        secure_boot: verified.secure_boot.to_owned(),
        lockdown: verified.lockdown,
        tpm,
        data,
    };
    let path = Path::new(TRUST_STATE);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| atomic_file::write(path, format!("{state}\n").as_bytes(), 0o644));
    if let Err(err) = written {
        progress!("{} not written: {err}", path.display());
    }
}

/// Whether `fstype` is mounted on `target` (already, or now).
fn mount_if_missing(fstype: &str, target: &str, extra: MountFlags) -> bool {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | extra;
    let already = std::fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|mounts| mounts.lines().any(|l| l.split(' ').nth(1) == Some(target)));
    if already {
        return true;
    }
    match rustix::mount::mount(fstype, target, fstype, flags, None) {
        Ok(()) => true,
        Err(err) => {
            progress!("{fstype} not mounted on {target}: {err}");
            false
        }
    }
}

/// The bracketed level of /sys/kernel/security/lockdown ("none [integrity] confidentiality").
fn lockdown_level(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lockdown_level() {
        assert_eq!(
            lockdown_level("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(
            lockdown_level("[none] integrity confidentiality"),
            Some("none")
        );
        assert_eq!(lockdown_level("garbage"), None);
    }
}
