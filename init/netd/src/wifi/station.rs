//! The station loop: connects to the system bus (dbus-daemon cannot say READY=1, so netd
//! retries), registers the agent with each iwd it sees, and every few seconds reads each
//! station's state: a disconnected station joins the first configured network in sight (or
//! scans), a station that became connected gets its link configured (DHCPv4, SLAAC), and
//! the state and signal go to the status socket. Polling rather than signals keeps one path
//! for a first join, a drop and an iwd restart. A change of the configured networks wakes the
//! loop at once: iwd's saved profiles of networks no longer configured, or configured with
//! another passphrase, are forgotten first (which leaves such a network if iwd is on it), so
//! a Wi-Fi trial tries the new networks and its revert really goes back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use carapace_netpolicy::NetdConfig;
use carapace_netpolicy::config::WifiNetwork;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zbus::fdo::{DBusProxy, ObjectManagerProxy};
use zbus::names::{BusName, OwnedUniqueName};
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus::{Connection, connection};

use super::agent::{AGENT_PATH, Agent};
use super::choice::{self, Seen, Step};
use super::iwd::{
    AgentManagerProxy, DEVICE_INTERFACE, KNOWN_NETWORK_INTERFACE, KnownNetworkProxy, NetworkProxy,
    SERVICE, STATION_INTERFACE, SYSTEM_BUS_ADDRESS, StationProxy,
};
use crate::dhcp::LinkEvent;
use crate::error::{Error, Result};
use crate::link_setup;
use crate::links;
use crate::state::{Shared, StationState};

/// How often the stations are read; also the wait before the bus is tried again.
const POLL: Duration = Duration::from_secs(3);

pub struct Wifi {
    pub config: watch::Receiver<NetdConfig>,
    pub handle: rtnetlink::Handle,
    pub shared: Shared,
    pub events: mpsc::Sender<LinkEvent>,
    /// The networks the loop has acted on; the control socket's replies wait for it.
    pub applied: watch::Sender<Vec<WifiNetwork>>,
    /// The networks in force before this netd, when they differed from the configuration
    /// (a trial reverted at start): their stale profiles in iwd are forgotten first.
    pub previous: Option<Vec<WifiNetwork>>,
}

/// What the loop remembers of the configured networks across bus sessions.
struct Networks {
    /// The list last acted on.
    last: Option<Vec<WifiNetwork>>,
    /// SSIDs whose profile in iwd may be stale, until iwd's known networks were gone through.
    stale: BTreeSet<String>,
}

impl Networks {
    fn note(&mut self, current: &[WifiNetwork]) {
        if let Some(last) = &self.last {
            if last.as_slice() == current {
                return;
            }
            self.stale.extend(choice::stale(last, current));
        }
        self.last = Some(current.to_vec());
    }
}

/// What netd remembers of a station between polls.
#[derive(Default)]
struct Tracked {
    state: String,
    ssid: Option<String>,
    /// The link's index and DHCP task once it was configured after a join.
    dhcp: Option<(u32, Option<JoinHandle<()>>)>,
}

fn bus(what: &str) -> impl FnOnce(zbus::Error) -> Error + '_ {
    move |source| Error::Bus {
        what: what.to_owned(),
        source: Box::new(source),
    }
}

impl Wifi {
    /// Runs for the life of netd; does nothing while no network is configured.
    pub async fn run(mut self) {
        let mut stations: BTreeMap<String, Tracked> = BTreeMap::new();
        let mut networks = Networks {
            last: self.previous.take(),
            stale: BTreeSet::new(),
        };
        loop {
            let error = match self.session(&mut stations, &mut networks).await {
                Ok(never) => match never {},
                Err(err) => err.to_string(),
            };
            self.set_bus(&format!("waiting: {error}"));
            tokio::time::sleep(POLL).await;
        }
    }

    /// Prints the bus line when it changes, so a long wait is one line, not one per poll.
    fn set_bus(&self, status: &str) {
        let mut state = self.shared.lock();
        if state.wifi.bus != status {
            println!("wifi: bus {status}");
            state.wifi.bus = status.to_owned();
        }
    }

    async fn session(
        &mut self,
        stations: &mut BTreeMap<String, Tracked>,
        known: &mut Networks,
    ) -> Result<std::convert::Infallible> {
        let agent = Agent {
            config: self.config.clone(),
        };
        let connection = connection::Builder::address(SYSTEM_BUS_ADDRESS)
            .and_then(|b| b.serve_at(AGENT_PATH, agent))
            .map_err(bus("connect to the system bus"))?
            .build()
            .await
            .map_err(bus("connect to the system bus"))?;
        self.set_bus("connected");
        let driver = DBusProxy::new(&connection)
            .await
            .map_err(bus("ask the bus"))?;
        let iwd_name = BusName::try_from(SERVICE).map_err(|e| bus("name iwd")(e.into()))?;
        let mut registered_with: Option<OwnedUniqueName> = None;
        loop {
            let networks = self.config.borrow_and_update().wifi.clone();
            known.note(&networks);
            self.shared.lock().wifi.networks = networks.iter().map(|n| n.ssid.clone()).collect();
            match driver.get_name_owner(iwd_name.clone()).await {
                Ok(owner) => {
                    if registered_with.as_ref() != Some(&owner) {
                        AgentManagerProxy::new(&connection)
                            .await
                            .map_err(bus("reach iwd"))?
                            .register_agent(&ObjectPath::from_static_str_unchecked(AGENT_PATH))
                            .await
                            .map_err(bus("register the agent with iwd"))?;
                        println!("wifi: agent registered with iwd ({owner})");
                        registered_with = Some(owner);
                    }
                    self.poll(&connection, stations, &networks, &mut known.stale)
                        .await?;
                }
                Err(_) => {
                    if registered_with.take().is_some() {
                        println!("wifi: iwd left the bus");
                    }
                    self.shared.lock().wifi.stations.clear();
                }
            }
            // Without iwd there is nothing to forget now; it is gone through when iwd is back,
            // before any station is polled.
            self.applied.send_replace(networks);
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                Ok(()) = self.config.changed() => {}
            }
        }
    }

    /// Reads every station once and acts on what it finds.
    async fn poll(
        &mut self,
        connection: &Connection,
        stations: &mut BTreeMap<String, Tracked>,
        networks: &[WifiNetwork],
        stale: &mut BTreeSet<String>,
    ) -> Result<()> {
        let objects = ObjectManagerProxy::builder(connection)
            .destination(SERVICE)
            .and_then(|b| b.path("/"))
            .map_err(bus("list iwd's objects"))?
            .build()
            .await
            .map_err(bus("list iwd's objects"))?
            .get_managed_objects()
            .await
            .map_err(|e| bus("list iwd's objects")(e.into()))?;
        let known: Vec<(&OwnedObjectPath, String)> = objects
            .iter()
            .filter_map(|(path, interfaces)| {
                interfaces
                    .iter()
                    .find(|(i, _)| i.as_str() == KNOWN_NETWORK_INTERFACE)
                    .and_then(|(_, properties)| properties.get("Name"))
                    .and_then(|name| String::try_from(name.clone()).ok())
                    .map(|name| (path, name))
            })
            .collect();
        let names: Vec<String> = known.iter().map(|(_, name)| name.clone()).collect();
        let mut all_forgotten = true;
        for name in choice::to_forget(&names, networks, stale) {
            let Some((path, _)) = known.iter().find(|(_, n)| *n == name) else {
                continue;
            };
            let why = if stale.contains(&name) && networks.iter().any(|n| n.ssid == name) {
                "its passphrase changed"
            } else {
                "not configured"
            };
            match forget(connection, path).await {
                Ok(()) => println!("wifi: forgot ssid={name} ({why})"),
                Err(err) => {
                    eprintln!("wifi: forgetting ssid={name}: {err}");
                    all_forgotten = false;
                }
            }
        }
        if all_forgotten {
            stale.clear();
        }
        let mut reported = Vec::new();
        for (path, interfaces) in &objects {
            if !interfaces.keys().any(|i| i.as_str() == STATION_INTERFACE) {
                continue;
            }
            let Some(interface) = interfaces
                .iter()
                .find(|(i, _)| i.as_str() == DEVICE_INTERFACE)
                .and_then(|(_, properties)| properties.get("Name"))
                .and_then(|name| String::try_from(name.clone()).ok())
            else {
                continue;
            };
            let tracked = stations.entry(interface.clone()).or_default();
            let report = self
                .poll_station(connection, path, &interface, tracked, networks)
                .await;
            reported.push(report);
        }
        self.shared.lock().wifi.stations = reported;
        Ok(())
    }

    async fn poll_station(
        &mut self,
        connection: &Connection,
        path: &OwnedObjectPath,
        interface: &str,
        tracked: &mut Tracked,
        networks: &[WifiNetwork],
    ) -> StationState {
        let mut report = StationState {
            interface: interface.to_owned(),
            ..StationState::default()
        };
        let station = match station_proxy(connection, path).await {
            Ok(station) => station,
            Err(err) => {
                report.last_error = Some(err.to_string());
                return report;
            }
        };
        let state = station.state().await.unwrap_or_else(|err| err.to_string());
        let seen = ordered_networks(connection, &station).await;
        let connected_ssid = match station.connected_network().await {
            Ok(network) => network_name(connection, network).await.ok(),
            Err(_) => None,
        };
        report.state.clone_from(&state);
        report.ssid.clone_from(&connected_ssid);
        report.signal_dbm = connected_ssid
            .as_ref()
            .and_then(|ssid| seen.iter().find(|s| &s.ssid == ssid))
            .map(|s| s.signal_dbm);

        if state == "connected" && tracked.state != "connected" {
            println!(
                "wifi {interface}: connected ssid={} signal={}",
                connected_ssid.as_deref().unwrap_or("?"),
                report
                    .signal_dbm
                    .map_or_else(|| "?".to_owned(), |s| s.to_string())
            );
            self.configure_link(interface, tracked).await;
        } else if state == "disconnected" && tracked.state == "connected" {
            println!(
                "wifi {interface}: disconnected ssid={}",
                tracked.ssid.as_deref().unwrap_or("?")
            );
        }
        tracked.state.clone_from(&state);
        if connected_ssid.is_some() {
            tracked.ssid = connected_ssid;
        }

        match choice::next_step(&state, networks, &seen) {
            Step::Wait => {}
            Step::Scan => {
                // A scan already running is fine: its results arrive by the next poll.
                let _ = station.scan().await;
            }
            Step::Join(ssid) => {
                let signal = seen.iter().find(|s| s.ssid == ssid).map(|s| s.signal_dbm);
                println!(
                    "wifi {interface}: joining ssid={ssid} signal={}",
                    signal.map_or_else(|| "?".to_owned(), |s| s.to_string())
                );
                let open = networks.iter().any(|n| n.ssid == ssid && n.is_open());
                if let Err(err) = join(connection, &station, &ssid, open).await {
                    eprintln!("wifi {interface}: joining ssid={ssid} failed: {err}");
                    report.last_error = Some(err.to_string());
                }
            }
        }
        report
    }

    /// DHCPv4 and SLAAC on the wireless link, once per link index (iwd recreates links when
    /// it restarts, and a new index gets a new DHCP client).
    async fn configure_link(&mut self, interface: &str, tracked: &mut Tracked) {
        let link = match links::link_named(&self.handle, interface).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                eprintln!("wifi {interface}: no such link");
                return;
            }
            Err(err) => {
                eprintln!("wifi {interface}: {err}");
                return;
            }
        };
        if tracked.dhcp.as_ref().is_some_and(|(i, _)| *i == link.index) {
            return;
        }
        if let Some((_, Some(task))) = tracked.dhcp.take() {
            task.abort();
        }
        let index = link.index;
        let config = self.config.borrow().clone();
        let task = link_setup::start(&self.handle, link, &config, &self.shared, &self.events).await;
        tracked.dhcp = Some((index, task));
    }
}

async fn station_proxy<'c>(
    connection: &'c Connection,
    path: &OwnedObjectPath,
) -> zbus::Result<StationProxy<'c>> {
    StationProxy::builder(connection)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

async fn forget(connection: &Connection, path: &OwnedObjectPath) -> zbus::Result<()> {
    KnownNetworkProxy::builder(connection)
        .path(path.clone())?
        .build()
        .await?
        .forget()
        .await
}

async fn network_name(connection: &Connection, path: OwnedObjectPath) -> zbus::Result<String> {
    network_proxy(connection, path).await?.name().await
}

/// The networks iwd sees from this station, by SSID and security, strongest first as iwd
/// orders them.
async fn ordered_networks(connection: &Connection, station: &StationProxy<'_>) -> Vec<Seen> {
    let Ok(ordered) = station.get_ordered_networks().await else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    for (path, signal) in ordered {
        let Ok(network) = network_proxy(connection, path).await else {
            continue;
        };
        if let (Ok(ssid), Ok(security)) = (network.name().await, network.security().await) {
            seen.push(Seen {
                ssid,
                signal_dbm: choice::dbm(signal),
                open: security == "open",
            });
        }
    }
    seen
}

async fn network_proxy(
    connection: &Connection,
    path: OwnedObjectPath,
) -> zbus::Result<NetworkProxy<'_>> {
    NetworkProxy::builder(connection)
        .path(path)?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// Asks iwd to join `ssid`; iwd asks the agent for the passphrase of a network it does not
/// know yet. Returns once iwd is connected or gave up.
async fn join(
    connection: &Connection,
    station: &StationProxy<'_>,
    ssid: &str,
    open: bool,
) -> zbus::Result<()> {
    for (path, _) in station.get_ordered_networks().await? {
        let network = network_proxy(connection, path).await?;
        if network.name().await? == ssid && (network.security().await? == "open") == open {
            return network.connect().await;
        }
    }
    Err(zbus::Error::Failure(format!("{ssid:?} is out of sight")))
}
