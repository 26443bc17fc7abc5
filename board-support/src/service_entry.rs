//! One row of PID 1's service table (/etc/carapace/services.toml, docs/boot-contract.md):
//! the builder writes it from a recipe's `[[service]]` tables, PID 1 reads it back. One type
//! on both sides keeps the two from drifting apart; each side checks what it needs.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub name: String,
    pub exec: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    /// Bytes; `None` leaves the cgroup at "max".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
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
}
