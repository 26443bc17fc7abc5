//! netd's answers to the DNS stub's two questions: which names (the allowlist, plus the time
//! servers netd itself looks up, which open no port for anyone), and how to open the firewall
//! (nft, through [`Firewall`]).

use std::net::IpAddr;
use std::time::Duration;

use carapace_netpolicy::{Allowlist, NetdConfig};

use crate::dns::{AllowSink, NamePolicy};
use crate::firewall::Firewall;

pub struct NetdPolicy {
    allowlist: Allowlist,
    /// Time server names from the configuration: netd resolves them through the stub, and
    /// their answers open no port for the egress services.
    own_names: Vec<String>,
}

impl NetdPolicy {
    pub fn new(config: &NetdConfig) -> NetdPolicy {
        let own_names = config
            .time
            .iter()
            .flat_map(|t| t.servers.iter())
            .filter(|s| s.parse::<IpAddr>().is_err())
            .map(|s| carapace_netpolicy::allowlist::normalise(s))
            .collect();
        NetdPolicy {
            allowlist: Allowlist::new(config.allow.clone()),
            own_names,
        }
    }
}

impl NamePolicy for NetdPolicy {
    fn ports(&self, name: &str) -> Option<Vec<u16>> {
        self.allowlist
            .ports(name)
            .or_else(|| self.own_names.iter().any(|n| n == name).then(Vec::new))
    }
}

pub struct NftSink {
    firewall: Firewall,
}

impl NftSink {
    pub fn new(firewall: Firewall) -> NftSink {
        NftSink { firewall }
    }
}

impl AllowSink for NftSink {
    async fn allow(&self, entries: Vec<(IpAddr, u16)>, timeout: Duration) -> Result<(), String> {
        self.firewall
            .allow(&entries, timeout)
            .await
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_server_names_resolve_but_open_no_port() {
        let config = NetdConfig::parse(
            "[time]\nservers = [\"pool.ntp.org\", \"192.0.2.1\"]\n[[allow]]\nname = \"*.example.org\"\nports = [443, 8443]\n",
        )
        .expect("config");
        let policy = NetdPolicy::new(&config);
        assert_eq!(policy.ports("pool.ntp.org"), Some(vec![]));
        assert_eq!(policy.ports("api.example.org"), Some(vec![443, 8443]));
        assert_eq!(policy.ports("example.org"), None);
        assert_eq!(policy.ports("192.0.2.1"), None);
        assert_eq!(policy.ports("ntp.org"), None);
    }
}
