//! netd's hands on the firewall: it adds elements to the allow sets (for the DNS stub) and
//! keeps its own sets (its resolvers and time servers) in step with the lease and the
//! configuration. It never creates, flushes or deletes the table: PID 1 loaded that. It empties
//! the allow sets when an entry leaves the allowlist.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use carapace_netpolicy::{ElementOp, FirewallStatus, L4Proto, TABLE};
use nftables::schema::Nftables;

use crate::error::{Error, Result};

/// The ports of the servers netd itself talks to (its own sets open them for its uid).
pub const DNS_PORT: u16 = 53;
pub const NTP_PORT: u16 = 123;
/// netd's own elements expire on their own (so a netd that crashed leaves no stale server
/// open for long) and are renewed well before that (netd's main loop, REFRESH_INTERVAL).
pub const NETD_ELEMENT_TIMEOUT_SECS: u32 = 3600;
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1200);

#[derive(Clone)]
pub struct Firewall {
    program: PathBuf,
}

impl Firewall {
    pub fn new(program: PathBuf) -> Firewall {
        Firewall { program }
    }

    /// Runs nft on the blocking pool: it is a short-lived child, but the runtime has one thread.
    async fn apply(&self, commands: Nftables<'static>) -> Result<()> {
        let program = self.program.clone();
        tokio::task::spawn_blocking(move || carapace_netpolicy::apply(&program, &commands))
            .await
            .map_err(|err| Error::FirewallTask(err.to_string()))?
            .map_err(Error::from)
    }

    /// Opens `addr:port` (TCP) for the egress services for `timeout`.
    pub async fn allow(&self, entries: &[(IpAddr, u16)], timeout: Duration) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1);
        self.apply(carapace_netpolicy::allow_elements(entries, secs))
            .await
    }

    /// Closes every address the allow sets opened (an entry left the allowlist).
    pub async fn close_allowed(&self) -> Result<()> {
        self.apply(carapace_netpolicy::flush_allow_sets()).await
    }

    /// The table as nft lists it (JSON), for the status socket.
    pub async fn list(&self) -> Result<FirewallStatus> {
        let program = self.program.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&program)
                .args(["-j", "list", "table", "inet", TABLE])
                .output()
        })
        .await
        .map_err(|err| Error::FirewallTask(err.to_string()))?
        .map_err(|err| Error::FirewallTask(format!("run {}: {err}", self.program.display())))?;
        if !output.status.success() {
            return Err(Error::FirewallTask(format!(
                "nft list table inet {TABLE}: {} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(carapace_netpolicy::status(&String::from_utf8_lossy(
            &output.stdout,
        ))?)
    }
}

/// The elements of netd's own sets: resolvers (UDP and TCP 53) and time servers (UDP 123).
pub fn netd_entries(
    resolvers: &[IpAddr],
    time_servers: &[IpAddr],
) -> HashSet<(IpAddr, L4Proto, u16)> {
    let mut entries = HashSet::new();
    for &addr in resolvers {
        entries.insert((addr, L4Proto::Udp, DNS_PORT));
        entries.insert((addr, L4Proto::Tcp, DNS_PORT));
    }
    for &addr in time_servers {
        entries.insert((addr, L4Proto::Udp, NTP_PORT));
    }
    entries
}

/// Keeps netd's sets equal to what it was last given: deletes the gone, adds (and so renews)
/// the rest.
pub struct NetdSets {
    firewall: Firewall,
    current: HashSet<(IpAddr, L4Proto, u16)>,
}

impl NetdSets {
    pub fn new(firewall: Firewall) -> NetdSets {
        NetdSets {
            firewall,
            current: HashSet::new(),
        }
    }

    pub async fn set(&mut self, wanted: HashSet<(IpAddr, L4Proto, u16)>) -> Result<()> {
        let gone: Vec<_> = self.current.difference(&wanted).copied().collect();
        let all: Vec<_> = wanted.iter().copied().collect();
        if !gone.is_empty() {
            self.firewall
                .apply(carapace_netpolicy::netd_elements(
                    ElementOp::Delete,
                    &gone,
                    0,
                ))
                .await?;
        }
        if !all.is_empty() {
            let add =
                carapace_netpolicy::netd_elements(ElementOp::Add, &all, NETD_ELEMENT_TIMEOUT_SECS);
            self.firewall.apply(add).await?;
        }
        self.current = wanted;
        Ok(())
    }
}
