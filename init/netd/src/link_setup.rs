//! One link brought into service with its configuration (DHCPv4 and SLAAC when the
//! configuration names it not): ethernet links at start, a wireless link once iwd is connected.

use carapace_netpolicy::NetdConfig;
use carapace_netpolicy::config::{Ipv4Mode, Ipv6Mode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dhcp::{self, LinkEvent};
use crate::links::{self, Link};
use crate::state::{LinkState, Shared};

/// Records the link in the shared state, sets its IPv6 mode, brings it up and starts DHCPv4
/// or puts its static address on it. Returns the DHCP task, when one was started.
pub async fn start(
    handle: &rtnetlink::Handle,
    link: Link,
    config: &NetdConfig,
    shared: &Shared,
    events: &mpsc::Sender<LinkEvent>,
) -> Option<JoinHandle<()>> {
    let wanted = config.interfaces.iter().find(|i| i.name == link.name);
    let ipv4 = wanted.map_or(Ipv4Mode::Dhcp, |i| i.ipv4);
    let ipv6 = wanted.map_or(Ipv6Mode::Slaac, |i| i.ipv6);
    {
        let mut state = shared.lock();
        // A link of the same name with another index is gone (iwd recreates its links).
        state.links.retain(|l| l.name != link.name);
        state.links.push(LinkState {
            name: link.name.clone(),
            index: link.index,
            mac: link.mac.clone(),
            ipv4: format!("{ipv4:?}").to_lowercase(),
            ipv6: format!("{ipv6:?}").to_lowercase(),
            carrier: link.carrier,
            ..LinkState::default()
        });
    }
    if let Err(err) = links::set_ipv6(&link.name, ipv6 == Ipv6Mode::Slaac) {
        eprintln!("links {}: {err}", link.name);
    }
    if ipv4 == Ipv4Mode::Off && ipv6 == Ipv6Mode::Off {
        return None;
    }
    if let Err(err) = links::bring_up(handle, &link).await {
        eprintln!("links {}: {err}", link.name);
        return None;
    }
    println!(
        "links: {} up mac={} ipv4={ipv4:?} ipv6={ipv6:?}",
        link.name, link.mac
    );
    match (ipv4, wanted) {
        (Ipv4Mode::Dhcp, _) => Some(tokio::spawn(dhcp::run(
            handle.clone(),
            link,
            hostname(),
            shared.clone(),
            events.clone(),
        ))),
        (Ipv4Mode::Static, Some(interface)) => {
            if let Err(err) = links::apply_static(handle, &link, interface).await {
                eprintln!("links {}: {err}", link.name);
            }
            None
        }
        _ => None,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
