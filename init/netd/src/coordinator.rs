//! Where the parts meet: leases and configuration go in; out come netd's own firewall sets
//! (resolvers, time servers), the DNS stub's upstreams and the time servers to ask. The sets
//! change before the lists are published, so the first packet to a new server is allowed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use carapace_netpolicy::NetdConfig;
use tokio::sync::watch;

use crate::dhcp::LinkEvent;
use crate::firewall::{DNS_PORT, NTP_PORT, NetdSets, netd_entries};
use crate::state::{Lease, Shared};

pub struct Coordinator {
    pub shared: Shared,
    pub sets: NetdSets,
    pub upstreams: watch::Sender<Vec<SocketAddr>>,
    pub time_servers: watch::Sender<Vec<IpAddr>>,
    pub leases: BTreeMap<u32, Lease>,
    pub config: NetdConfig,
}

impl Coordinator {
    pub async fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Leased { index, lease } => {
                if self.leases.get(&index) == Some(&lease) {
                    return;
                }
                self.leases.insert(index, lease);
            }
            LinkEvent::Lost { index } => {
                if self.leases.remove(&index).is_none() {
                    return;
                }
            }
        }
        self.publish().await;
    }

    pub async fn publish(&mut self) {
        let mut resolvers: Vec<IpAddr> = Vec::new();
        let mut ntp: Vec<IpAddr> = Vec::new();
        for lease in self.leases.values() {
            push_new(&mut resolvers, &lease.dns);
            push_new(&mut ntp, &lease.ntp);
        }
        if let Some(dns) = &self.config.dns {
            push_new(&mut resolvers, &dns.upstreams);
        }
        let configured: Vec<String> = self
            .config
            .time
            .as_ref()
            .map(|t| t.servers.clone())
            .unwrap_or_default();
        // Resolvers first: names among the time servers are resolved through them.
        self.apply(&resolvers, &ntp).await;
        let upstreams = resolvers
            .iter()
            .map(|&ip| SocketAddr::new(ip, DNS_PORT))
            .collect();
        self.upstreams
            .send_if_modified(|old| replace(old, upstreams));
        let mut names = Vec::new();
        for server in &configured {
            match server.parse::<IpAddr>() {
                Ok(addr) => push_new(&mut ntp, &[addr]),
                Err(_) => names.push(server.clone()),
            }
        }
        for name in names {
            // Through the stub, which allows netd's own time server names (no ports).
            match tokio::net::lookup_host((name.as_str(), NTP_PORT)).await {
                Ok(found) => {
                    let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
                    push_new(&mut ntp, &found);
                }
                Err(err) => eprintln!("time: resolve {name}: {err}"),
            }
        }
        self.apply(&resolvers, &ntp).await;
        {
            let mut state = self.shared.lock();
            state.resolvers.clone_from(&resolvers);
            state.time_servers = configured;
        }
        self.time_servers.send_if_modified(|old| replace(old, ntp));
    }

    async fn apply(&mut self, resolvers: &[IpAddr], ntp: &[IpAddr]) {
        if let Err(err) = self.sets.set(netd_entries(resolvers, ntp)).await {
            eprintln!("firewall: {err}");
        }
    }
}

fn push_new(list: &mut Vec<IpAddr>, new: &[IpAddr]) {
    for addr in new {
        if !list.contains(addr) {
            list.push(*addr);
        }
    }
}

fn replace<T: PartialEq>(old: &mut T, new: T) -> bool {
    if *old == new {
        return false;
    }
    *old = new;
    true
}
