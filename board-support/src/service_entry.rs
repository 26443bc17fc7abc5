//! One row of PID 1's service table (/etc/carapace/services.toml, docs/boot-contract.md):
//! the builder writes it from a recipe's `[[service]]` tables, PID 1 reads it back. One type
//! and one check ([`ServiceEntry::validate`]) on both sides, so a row that builds also boots.

use serde::{Deserialize, Serialize};

use crate::capability;
use crate::error::Error;

/// Names become paths (/data/<name>, /run/<name>, a cgroup) and console prefixes.
pub const MAX_NAME_LEN: usize = 32;
/// A service watchdog longer than an hour would not catch a hang in any useful time, and a
/// bound keeps every deadline computation far from `Instant`'s limits.
pub const MAX_WATCHDOG_SEC: u64 = 3600;
/// Below this no service of ours even starts; it catches limits given in MiB, not bytes.
pub const MIN_MEMORY_MAX: u64 = 4 * 1024 * 1024;
/// pids.max of a service's cgroup when the table names none: room for thread pools, not
/// for a fork bomb.
pub const DEFAULT_PIDS_MAX: u64 = 256;
/// The kernel's own ceiling for pid_max.
pub const MAX_PIDS_MAX: u64 = 4_194_304;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub name: String,
    pub exec: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    /// Bytes, written to memory.max; every service has one.
    pub memory_max: u64,
    /// Written to pids.max; [`DEFAULT_PIDS_MAX`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub watchdog_sec: u64,
    #[serde(default)]
    pub state_dir: bool,
    #[serde(default)]
    pub runtime_dir: bool,
    /// Services (earlier in the table, with `ready = true`) that must have said READY=1
    /// before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The service's place in the network lockdown: the firewall lets `netd` talk to DHCP,
    /// DNS and NTP servers and `egress` services reach the allowlisted addresses; services
    /// without a role have no network beyond loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRole>,
    /// Before this service starts, PID 1 has the disk helper move the owner-settings file
    /// ([`OWNER_SETTINGS_ESP_NAME`]) from the boot partition into its state directory as
    /// [`OWNER_SETTINGS_FILE`] (0600, the service's uid): secrets leave the FAT partition at
    /// the first boot that sees them. One service at most, with `state_dir = true`. A new
    /// encrypted /data's recovery key goes there too, as [`DATA_RECOVERY_KEY_FILE`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_settings: bool,
    /// The update service: before it starts, PID 1 has the disk helper mount the ESP at
    /// [`crate::ESP_MOUNT_POINT`] for it (its uid and gid own every file there) and hand it the
    /// slots' root partitions: the inactive slot's device to write (0600), the booted slot's
    /// to read chunks from (root, its group, 0440). One service at most.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub boot_control: bool,
    /// PID 1 honours this service's `REBOOT=1` (an orderly restart of the box): agentd, when
    /// the owner confirms `/reboot`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot: bool,
    /// A virtual terminal (`tty1`: what the HDMI screen shows) PID 1 hands to this service
    /// (owner and group) before it starts: agentd draws the pairing QR code there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
}

/// `tty1` … `tty63`: the kernel's virtual terminals (tty0 is "the current one", not a device
/// a service may own).
fn is_virtual_terminal(name: &str) -> bool {
    name.strip_prefix("tty")
        .filter(|n| !n.starts_with('0'))
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=63).contains(&n))
}

/// The owner-settings file's name in the root of the ESP (`carapace build --owner-settings`).
pub const OWNER_SETTINGS_ESP_NAME: &str = "carapace-owner.toml";
/// Its name once moved into the state directory of the `owner_settings` service.
pub const OWNER_SETTINGS_FILE: &str = "owner-settings.toml";
/// The recovery key of an encrypted /data (five groups of five characters and a newline), in
/// the state directory of the `owner_settings` service, which shows it to the owner.
pub const DATA_RECOVERY_KEY_FILE: &str = "data-recovery-key.txt";

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkRole {
    /// Brings up links, keeps time and runs the DNS stub that fills the firewall's sets.
    Netd,
    /// Reaches the allowlist; starts after netd said READY=1.
    Egress,
}

impl ServiceEntry {
    /// Checks what can be checked of one row on its own; [`crate::ServiceTable`] adds the
    /// checks across rows (unique names, `after`).
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |field: &'static str, problem: String| {
            Err(Error::ServiceField {
                service: self.name.clone(),
                field,
                problem,
            })
        };
        let name = &self.name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return fail(
                "name",
                format!(
                    "{name:?} must be 1 to {MAX_NAME_LEN} of a-z, 0-9, '-', '_', starting with a letter"
                ),
            );
        }
        match self.exec.first() {
            None => return fail("exec", "the command is empty".to_owned()),
            Some(program) if !program.starts_with('/') => {
                return fail("exec", format!("{program:?} is not an absolute path"));
            }
            Some(_) => {}
        }
        if self.exec.iter().any(|arg| arg.contains('\0')) {
            return fail("exec", "an argument contains a NUL".to_owned());
        }
        // Only PID 1 runs as root; -1 means "unchanged" to setresuid/setresgid.
        if self.uid == 0 || self.uid == u32::MAX {
            return fail("uid", format!("{} is not allowed (root or -1)", self.uid));
        }
        if self.gid == 0 || self.gid == u32::MAX {
            return fail("gid", format!("{} is not allowed (root or -1)", self.gid));
        }
        if self.memory_max < MIN_MEMORY_MAX {
            return fail(
                "memory_max",
                format!(
                    "{} bytes is below {MIN_MEMORY_MAX} (4 MiB); give it in bytes",
                    self.memory_max
                ),
            );
        }
        if let Some(pids) = self.pids_max
            && !(1..=MAX_PIDS_MAX).contains(&pids)
        {
            return fail("pids_max", format!("{pids} is not in 1..={MAX_PIDS_MAX}"));
        }
        if self.watchdog_sec > MAX_WATCHDOG_SEC {
            return fail(
                "watchdog_sec",
                format!(
                    "{} is above {MAX_WATCHDOG_SEC}; 0 turns the watchdog off",
                    self.watchdog_sec
                ),
            );
        }
        if let Some(tty) = &self.tty
            && !is_virtual_terminal(tty)
        {
            return fail(
                "tty",
                format!("{tty:?} is not a virtual terminal; name one of tty1 to tty63"),
            );
        }
        if self.owner_settings && !self.state_dir {
            return fail(
                "owner_settings",
                "needs state_dir = true: the file is moved into the state directory".to_owned(),
            );
        }
        self.capability_bits().map(|_| ())
    }

    /// The 64-bit capability set of `capabilities`.
    pub fn capability_bits(&self) -> Result<u64, Error> {
        let mut bits = 0;
        for name in &self.capabilities {
            bits |= capability::bit(name).ok_or_else(|| Error::ServiceField {
                service: self.name.clone(),
                field: "capabilities",
                problem: format!("unknown capability {name:?} (expected e.g. \"CAP_NET_ADMIN\")"),
            })?;
        }
        Ok(bits)
    }

    pub fn pids_limit(&self) -> u64 {
        self.pids_max.unwrap_or(DEFAULT_PIDS_MAX)
    }

    pub fn state_directory(&self) -> Option<String> {
        self.state_dir.then(|| format!("/data/{}", self.name))
    }

    pub fn runtime_directory(&self) -> Option<String> {
        self.runtime_dir.then(|| format!("/run/{}", self.name))
    }
}
