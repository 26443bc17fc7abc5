//! The parts of iwd's D-Bus API netd uses (iwd's doc/*-api.txt): the agent manager, stations
//! (one per wireless device in station mode), their networks, the networks iwd knows (has
//! saved), and the devices' names.

use zbus::proxy;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

pub const SERVICE: &str = "net.connman.iwd";
/// Where iwd serves the agent manager and its object manager's root.
pub const MANAGER_PATH: &str = "/net/connman/iwd";
pub const STATION_INTERFACE: &str = "net.connman.iwd.Station";
pub const DEVICE_INTERFACE: &str = "net.connman.iwd.Device";
pub const KNOWN_NETWORK_INTERFACE: &str = "net.connman.iwd.KnownNetwork";
/// The system bus's socket; the image has no /var/run, where zbus would look by default.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

#[proxy(
    interface = "net.connman.iwd.AgentManager",
    default_service = "net.connman.iwd",
    default_path = "/net/connman/iwd"
)]
pub trait AgentManager {
    fn register_agent(&self, path: &ObjectPath<'_>) -> zbus::Result<()>;
}

#[proxy(
    interface = "net.connman.iwd.Station",
    default_service = "net.connman.iwd"
)]
pub trait Station {
    fn scan(&self) -> zbus::Result<()>;

    /// Networks in iwd's order of preference, each with its signal in 100 * dBm.
    fn get_ordered_networks(&self) -> zbus::Result<Vec<(OwnedObjectPath, i16)>>;

    /// "connected", "disconnected", "connecting", "disconnecting" or "roaming".
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;

    /// Present only while connected.
    #[zbus(property)]
    fn connected_network(&self) -> zbus::Result<OwnedObjectPath>;
}

#[proxy(
    interface = "net.connman.iwd.Network",
    default_service = "net.connman.iwd"
)]
pub trait Network {
    /// Returns once connected, or with an error; for a network iwd does not know it first
    /// asks the registered agent for the passphrase.
    fn connect(&self) -> zbus::Result<()>;

    /// The SSID.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    /// "open", "wep", "psk" (WPA2/WPA3-Personal) or "8021x".
    #[zbus(property, name = "Type")]
    fn security(&self) -> zbus::Result<String>;
}

/// A network iwd saved after joining it (its passphrase in iwd's state directory): iwd joins
/// these by itself, without asking the agent.
#[proxy(
    interface = "net.connman.iwd.KnownNetwork",
    default_service = "net.connman.iwd"
)]
pub trait KnownNetwork {
    /// Deletes the saved profile, and disconnects if iwd is connected to it.
    fn forget(&self) -> zbus::Result<()>;
}
