//! DHCPv4 on one link, through mozim: discover, request, renew at T1, rebind at T2, and start
//! over when a lease is lost. Each lease's address and routes go onto the link here; its
//! resolvers and time servers go to netd's coordinator as a [`LinkEvent`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use mozim::{DhcpV4Client, DhcpV4Config, DhcpV4Lease, DhcpV4State};
use rtnetlink::Handle;
use tokio::sync::mpsc;

use crate::clock::unix_secs;
use crate::links::{self, Link};
use crate::state::{Lease, Shared};

/// Waits between failed attempts: short at first (a cable just plugged in), then a minute.
const RETRY_DELAYS: [u64; 4] = [1, 5, 15, 60];

#[derive(Debug)]
pub enum LinkEvent {
    Leased { index: u32, lease: Lease },
    Lost { index: u32 },
}

pub fn lease_of(lease: &DhcpV4Lease) -> Lease {
    let gateway = match &lease.classless_routes {
        // RFC 3442: with classless routes the router option is ignored.
        Some(routes) => routes
            .iter()
            .find(|r| r.prefix_length == 0)
            .map(|r| IpAddr::V4(r.router)),
        None => lease
            .gateways
            .as_ref()
            .and_then(|g| g.first())
            .map(|g| IpAddr::V4(*g)),
    };
    let v4 = |list: &Option<Vec<Ipv4Addr>>| -> Vec<IpAddr> {
        list.iter().flatten().map(|a| IpAddr::V4(*a)).collect()
    };
    Lease {
        address: IpAddr::V4(lease.yiaddr),
        prefix_len: lease.prefix_length(),
        server: IpAddr::V4(lease.srv_id),
        gateway,
        dns: v4(&lease.dns_srvs),
        ntp: v4(&lease.ntp_srvs),
        lease_secs: lease.lease_time_sec,
        acquired_unix: unix_secs(SystemTime::now()),
    }
}

/// Runs DHCPv4 on `link` for the life of netd. The client has no overall timeout: it keeps
/// discovering on a link without a server, and renews and rebinds until the lease expires,
/// which is when it fails and the address comes off.
pub async fn run(
    handle: Handle,
    link: Link,
    hostname: String,
    shared: Shared,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut failures = 0usize;
    let mut current: Option<Lease> = None;
    loop {
        let mut config = DhcpV4Config::new(&link.name);
        config.set_iface_index(link.index).set_host_name(&hostname);
        let error = match config.set_iface_mac(&link.mac) {
            Err(err) => err.to_string(),
            Ok(_) => match DhcpV4Client::init(config, None).await {
                Err(err) => err.to_string(),
                Ok(mut client) => {
                    let error = follow(
                        &mut client,
                        &handle,
                        &link,
                        &shared,
                        &events,
                        &mut current,
                        &mut failures,
                    )
                    .await;
                    client.clean_up();
                    error
                }
            },
        };
        eprintln!("dhcp {}: {error}", link.name);
        shared.link_mut(link.index, |l| l.last_error = Some(error));
        if let Some(old) = current.take() {
            drop_lease(&handle, &link, &old, &shared, &events).await;
        }
        let delay = RETRY_DELAYS[failures.min(RETRY_DELAYS.len() - 1)];
        failures += 1;
        tokio::time::sleep(Duration::from_secs(delay)).await;
    }
}

/// Drives one client until it fails; returns why.
async fn follow(
    client: &mut DhcpV4Client,
    handle: &Handle,
    link: &Link,
    shared: &Shared,
    events: &mpsc::Sender<LinkEvent>,
    current: &mut Option<Lease>,
    failures: &mut usize,
) -> String {
    loop {
        let state = match client.run().await {
            Ok(state) => state,
            Err(err) => return err.to_string(),
        };
        let DhcpV4State::Done(raw) = state else {
            eprintln!("dhcp {}: {state}", link.name);
            continue;
        };
        let lease = lease_of(&raw);
        let renewed = current
            .as_ref()
            .is_some_and(|old| same_binding(old, &lease));
        if !renewed {
            if let Some(old) = current.take() {
                drop_lease(handle, link, &old, shared, events).await;
            }
            if let Err(err) = apply(handle, link, &raw, &lease).await {
                return err.to_string();
            }
            eprintln!(
                "dhcp {}: lease {}/{} from {} gateway={} dns={} ntp={} for {} s",
                link.name,
                lease.address,
                lease.prefix_len,
                lease.server,
                lease.gateway.map_or("none".to_owned(), |g| g.to_string()),
                list(&lease.dns),
                list(&lease.ntp),
                lease.lease_secs
            );
        }
        *failures = 0;
        *current = Some(lease.clone());
        shared.link_mut(link.index, |l| {
            l.lease = Some(lease.clone());
            l.last_error = None;
        });
        let _ = events
            .send(LinkEvent::Leased {
                index: link.index,
                lease,
            })
            .await;
    }
}

fn same_binding(old: &Lease, new: &Lease) -> bool {
    (old.address, old.prefix_len, old.gateway) == (new.address, new.prefix_len, new.gateway)
}

fn list(addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return "none".to_owned();
    }
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn apply(
    handle: &Handle,
    link: &Link,
    raw: &DhcpV4Lease,
    lease: &Lease,
) -> crate::error::Result<()> {
    links::add_address(handle, link.index, lease.address, lease.prefix_len).await?;
    match &raw.classless_routes {
        Some(routes) => {
            for route in routes {
                links::add_route(
                    handle,
                    link.index,
                    route.destination,
                    route.prefix_length,
                    route.router,
                )
                .await?;
            }
        }
        None => {
            if let Some(IpAddr::V4(gateway)) = lease.gateway {
                links::set_default_route(handle, link.index, gateway).await?;
            }
        }
    }
    Ok(())
}

async fn drop_lease(
    handle: &Handle,
    link: &Link,
    lease: &Lease,
    shared: &Shared,
    events: &mpsc::Sender<LinkEvent>,
) {
    // The kernel removes the lease's routes with its address.
    if let Err(err) = links::remove_address(handle, link.index, lease.address).await {
        eprintln!("dhcp {}: {err}", link.name);
    }
    eprintln!("dhcp {}: lease {} lost", link.name, lease.address);
    shared.link_mut(link.index, |l| l.lease = None);
    let _ = events.send(LinkEvent::Lost { index: link.index }).await;
}
