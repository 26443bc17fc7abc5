//! What netd knows, shared by its tasks and shown on the status socket. One struct behind one
//! lock: every task changes its own part and the status query copies the whole.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
pub struct State {
    /// Why the owner's configuration was not applied, when it was not.
    pub config_error: Option<String>,
    /// The base policy was missing or unreadable at start: netd then brings no link up.
    pub firewall_error: Option<String>,
    pub links: Vec<LinkState>,
    pub time: TimeState,
    /// The allowlist in force, as written in the configuration.
    pub allowlist: Vec<String>,
    /// The upstream resolvers and NTP servers in use (lease first, then configuration).
    pub resolvers: Vec<IpAddr>,
    pub time_servers: Vec<String>,
    pub wifi: WifiState,
    /// The last Wi-Fi trial from the control socket: pending, committed or reverted, and why.
    pub last_trial: Option<crate::trial::TrialReport>,
}

/// Wi-Fi as iwd reports it. Networks are named by SSID only: passphrases never leave the
/// configuration and the agent's answer to iwd.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WifiState {
    /// The configured SSIDs, in order of preference.
    pub networks: Vec<String>,
    /// "connected", or what netd is waiting for (the bus, iwd).
    pub bus: String,
    pub stations: Vec<StationState>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct StationState {
    pub interface: String,
    /// iwd's station state: "connected", "disconnected", "connecting", ...
    pub state: String,
    pub ssid: Option<String>,
    pub signal_dbm: Option<i16>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LinkState {
    pub name: String,
    pub index: u32,
    pub mac: String,
    /// "dhcp", "static" or "off".
    pub ipv4: String,
    /// "slaac" or "off".
    pub ipv6: String,
    pub lease: Option<Lease>,
    /// Every address on the link, as address/prefix (read from the kernel at query time).
    pub addresses: Vec<String>,
    pub carrier: bool,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lease {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub server: IpAddr,
    pub gateway: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub ntp: Vec<IpAddr>,
    pub lease_secs: u32,
    /// When it was (re)acquired, seconds since 1970 by the box's clock.
    pub acquired_unix: i64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TimeState {
    /// "forward to the last known time", "unchanged", …
    pub restored: String,
    pub synced: bool,
    pub server: Option<String>,
    pub last_offset_secs: Option<f64>,
    pub last_sync_unix: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<State>>);

impl Shared {
    /// A task that panicked while holding the lock left a state that is still a valid value,
    /// so a poisoned lock is used as it is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn link_mut<R>(&self, index: u32, change: impl FnOnce(&mut LinkState) -> R) -> Option<R> {
        let mut state = self.lock();
        state
            .links
            .iter_mut()
            .find(|l| l.index == index)
            .map(change)
    }
}
