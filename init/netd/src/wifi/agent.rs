//! The agent iwd asks for a passphrase when it joins a network it does not know yet. It
//! answers only for the configured SSIDs, and the passphrase goes back to iwd on the bus and
//! nowhere else: no log line or status field carries it.

use carapace_netpolicy::NetdConfig;
use carapace_netpolicy::config::WifiNetwork;
use tokio::sync::watch;
use zbus::zvariant::OwnedObjectPath;
use zbus::{Connection, interface};

use super::iwd::NetworkProxy;

/// Where netd serves the agent on its bus connection.
pub const AGENT_PATH: &str = "/net/carapace/netd/agent";

/// The errors iwd's agent API defines.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "net.connman.iwd.Agent.Error")]
pub enum AgentError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No passphrase for this network: iwd gives up on it.
    Canceled(String),
}

pub struct Agent {
    /// The configuration in force: a reload reaches the agent without a new registration.
    pub config: watch::Receiver<NetdConfig>,
}

#[interface(name = "net.connman.iwd.Agent")]
impl Agent {
    /// iwd unregistered the agent (it is stopping); the station loop registers it again.
    async fn release(&self) {}

    async fn request_passphrase(
        &self,
        #[zbus(connection)] connection: &Connection,
        network: OwnedObjectPath,
    ) -> Result<String, AgentError> {
        let ssid = NetworkProxy::builder(connection)
            .path(network)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?
            .name()
            .await?;
        let config = self.config.borrow();
        match passphrase_for(&config.wifi, &ssid) {
            Some(passphrase) => Ok(passphrase.to_owned()),
            None => Err(AgentError::Canceled(format!(
                "{ssid:?} is not a configured network with a passphrase"
            ))),
        }
    }

    /// iwd stopped waiting for an answer; there is nothing pending to drop.
    async fn cancel(&self, _reason: String) {}
}

/// A network configured as open has no passphrase to give: iwd asking for one means the
/// network in the air wants one, and it is not the network the owner meant.
fn passphrase_for<'a>(networks: &'a [WifiNetwork], ssid: &str) -> Option<&'a str> {
    networks
        .iter()
        .find(|n| n.ssid == ssid && !n.is_open())
        .map(|n| n.passphrase.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(ssid: &str, passphrase: &str) -> WifiNetwork {
        WifiNetwork {
            ssid: ssid.to_owned(),
            passphrase: passphrase.to_owned(),
        }
    }

    #[test]
    fn only_a_configured_ssid_gets_a_passphrase() {
        let networks = [
            network("home", "home-secret"),
            network("shop", "shop-secret"),
            network("cafe", ""),
        ];
        assert_eq!(passphrase_for(&networks, "shop"), Some("shop-secret"));
        assert_eq!(passphrase_for(&networks, "cafe"), None);
        assert_eq!(passphrase_for(&networks, "Shop"), None);
        assert_eq!(passphrase_for(&networks, "evil-twin"), None);
    }
}
