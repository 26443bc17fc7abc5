//! The kernel's view of the links, through rtnetlink: which ethernet links exist, bringing
//! them up, and putting a lease's or the configuration's addresses and routes on them.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub carrier: bool,
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |err| Error::Netlink {
        what,
        message: err.to_string(),
    }
}

pub fn connect() -> Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|err| Error::Netlink {
        what: "open a netlink socket".to_owned(),
        message: err.to_string(),
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Every ethernet link (Wi-Fi links are ethernet to the kernel too, but iwd owns those).
pub async fn ethernet_links(handle: &Handle) -> Result<Vec<Link>> {
    let mut stream = handle.link().get().execute();
    let mut links = Vec::new();
    while let Some(message) = stream.try_next().await.map_err(netlink("list links"))? {
        if let Some(link) = ethernet(&message) {
            links.push(link);
        }
    }
    Ok(links)
}

/// The link called `name`, wireless or not (iwd names and recreates wireless links itself).
pub async fn link_named(handle: &Handle, name: &str) -> Result<Option<Link>> {
    let mut stream = handle.link().get().match_name(name.to_owned()).execute();
    match stream.try_next().await {
        Ok(message) => Ok(message.as_ref().and_then(parse).map(|(link, _)| link)),
        Err(err) => Err(netlink(format!("find link {name}"))(err)),
    }
}

/// An ethernet link that is not wireless: iwd drives the wireless ones, and netd configures
/// them only once iwd is connected (src/wifi/station.rs).
fn ethernet(message: &LinkMessage) -> Option<Link> {
    if message.header.link_layer_type != LinkLayerType::Ether {
        return None;
    }
    parse(message)
        .filter(|(link, wireless)| !wireless && !is_cfg80211(&link.name))
        .map(|(link, _)| link)
}

/// A cfg80211 (nl80211) device: the link dump carries no wireless attribute for those (only
/// old wireless-extensions drivers send one), but sysfs links the link to its radio.
fn is_cfg80211(name: &str) -> bool {
    std::path::Path::new("/sys/class/net")
        .join(name)
        .join("phy80211")
        .exists()
}

/// The link and whether it is wireless.
fn parse(message: &LinkMessage) -> Option<(Link, bool)> {
    let mut wireless = false;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: String::new(),
        carrier: false,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Address(bytes) => {
                link.mac = bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
            }
            LinkAttribute::Carrier(carrier) => link.carrier = *carrier != 0,
            // A wireless link carries its own attribute block.
            LinkAttribute::Wireless(_) => wireless = true,
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some((link, wireless))
}

pub async fn bring_up(handle: &Handle, link: &Link) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(netlink(format!("bring {} up", link.name)))
}

/// Every address on `index`, as `address/prefix`.
pub async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(IpAddr, u8)>> {
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    let mut found = Vec::new();
    while let Some(message) = stream.try_next().await.map_err(netlink("list addresses"))? {
        if let Some(address) = address_of(&message) {
            found.push((address, message.header.prefix_len));
        }
    }
    Ok(found)
}

fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(address) => Some(*address),
        _ => None,
    })
}

pub async fn add_address(handle: &Handle, index: u32, address: IpAddr, prefix: u8) -> Result<()> {
    handle
        .address()
        .add(index, address, prefix)
        .replace()
        .execute()
        .await
        .map_err(netlink(format!("add {address}/{prefix}")))
}

pub async fn remove_address(handle: &Handle, index: u32, address: IpAddr) -> Result<()> {
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(address)
        .execute();
    while let Some(message) = stream.try_next().await.map_err(netlink("list addresses"))? {
        handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(netlink(format!("remove {address}")))?;
    }
    Ok(())
}

/// The default route through `gateway` on `index` (replacing any other default route).
pub async fn set_default_route(handle: &Handle, index: u32, gateway: Ipv4Addr) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(netlink(format!("add the default route via {gateway}")))
}

/// A route to `destination/prefix` through `gateway` (DHCP option 121).
pub async fn add_route(
    handle: &Handle,
    index: u32,
    destination: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination, prefix)
        .output_interface(index);
    if !gateway.is_unspecified() {
        builder = builder.gateway(gateway);
    }
    handle
        .route()
        .add(builder.build())
        .replace()
        .execute()
        .await
        .map_err(netlink(format!(
            "add the route to {destination}/{prefix} via {gateway}"
        )))
}

/// IPv6 on a link: the kernel does SLAAC and router advertisements itself once accept_ra and
/// autoconf are on; "off" turns IPv6 off on the link. CAP_NET_ADMIN is enough to write a
/// network sysctl.
pub fn set_ipv6(name: &str, slaac: bool) -> Result<()> {
    let settings: &[(&str, &str)] = if slaac {
        &[("disable_ipv6", "0"), ("accept_ra", "1"), ("autoconf", "1")]
    } else {
        &[("disable_ipv6", "1")]
    };
    for (key, value) in settings {
        let path = std::path::PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/{key}"));
        std::fs::write(&path, value).map_err(|source| Error::Write { path, source })?;
    }
    Ok(())
}

/// A static IPv4 configuration: its address, and its default route when it names a gateway.
pub async fn apply_static(
    handle: &Handle,
    link: &Link,
    interface: &carapace_netpolicy::config::InterfaceConfig,
) -> Result<()> {
    let Some(cidr) = interface.address else {
        return Ok(());
    };
    add_address(
        handle,
        link.index,
        IpAddr::V4(cidr.address),
        cidr.prefix_len,
    )
    .await?;
    if let Some(gateway) = interface.gateway {
        set_default_route(handle, link.index, gateway).await?;
    }
    Ok(())
}
