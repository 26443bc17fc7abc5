//! netd's configuration: links, DNS upstreams, time servers, the allowlist and Wi-Fi
//! networks, in one TOML file. The image carries defaults (built from the recipe), the owner
//! may put a file on /data; [`NetdConfig::merged`] combines them so that the owner can change
//! how the box connects but never shrink the image's allowlist.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::allowlist::{AllowEntry, NamePattern};
use crate::error::Error;

/// The image's defaults, written by the builder from the recipe's `[network]`.
pub const IMAGE_CONFIG_PATH: &str = "/etc/carapace/netd.toml";
/// The owner's file; its sections replace the image's.
pub const OWNER_CONFIG_PATH: &str = "/data/netd/config.toml";
/// The last owner file with which the box got online, kept to fall back on.
pub const LAST_GOOD_CONFIG_PATH: &str = "/data/netd/config.last-good.toml";

/// The kernel's IFNAMSIZ less the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetdConfig {
    /// Without any, every ethernet link gets DHCPv4 and IPv6 SLAAC.
    #[serde(default, rename = "interface", skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wifi: Vec<WifiNetwork>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    #[serde(default)]
    pub ipv4: Ipv4Mode,
    /// Static only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Cidr>,
    /// Static only; without it the link has no default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Ipv6Mode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ipv4Mode {
    #[default]
    Dhcp,
    Static,
    Off,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Mode {
    #[default]
    Slaac,
    Off,
}

/// An IPv4 address with its prefix length, "192.0.2.5/24".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Ipv4Cidr, String> {
        let bad = || {
            format!("{text:?} is not an IPv4 address with a prefix length, e.g. \"192.0.2.5/24\"")
        };
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address = address.parse().map_err(|_| bad())?;
        let prefix_len = prefix
            .parse::<u8>()
            .ok()
            .filter(|len| (1..=32).contains(len))
            .ok_or_else(bad)?;
        Ok(Ipv4Cidr {
            address,
            prefix_len,
        })
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Ipv4Cidr, String> {
        text.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(cidr: Ipv4Cidr) -> String {
        cidr.to_string()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Asked in addition to the servers the DHCP lease names.
    #[serde(default)]
    pub upstreams: Vec<IpAddr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// Names or IP addresses, after the lease's NTP servers.
    #[serde(default)]
    pub servers: Vec<String>,
}

/// `[[wifi]] ssid, passphrase`: the type and its rules are board-support's, shared with the
/// owner settings and netd's control socket.
pub use board_support::wifi::WifiNetwork;

impl NetdConfig {
    /// Reads and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<NetdConfig, Error> {
        let config: NetdConfig = toml::from_str(text).map_err(|err| Error::ConfigSyntax {
            message: err.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The checks TOML's types cannot express; every error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let mut seen = BTreeSet::new();
        for (index, interface) in self.interfaces.iter().enumerate() {
            interface.validate(index)?;
            if !seen.insert(interface.name.as_str()) {
                return Err(field(
                    format!("interface[{index}].name"),
                    format!(
                        "{:?} is configured twice; merge the two [[interface]] tables",
                        interface.name
                    ),
                ));
            }
        }
        if let Some(dns) = &self.dns {
            for (index, upstream) in dns.upstreams.iter().enumerate() {
                if upstream.is_unspecified() || upstream.is_multicast() || upstream.is_loopback() {
                    return Err(field(
                        format!("dns.upstreams[{index}]"),
                        format!(
                            "{upstream} cannot be a DNS server (unspecified, multicast or \
                             loopback, where the stub itself listens); give a resolver's unicast \
                             address"
                        ),
                    ));
                }
            }
        }
        if let Some(time) = &self.time {
            for (index, server) in time.servers.iter().enumerate() {
                if server.parse::<IpAddr>().is_err()
                    && !matches!(server.parse(), Ok(NamePattern::Exact(_)))
                {
                    return Err(field(
                        format!("time.servers[{index}]"),
                        format!(
                            "{server:?} is neither an IP address nor a host name such as \
                             \"pool.ntp.org\""
                        ),
                    ));
                }
            }
        }
        if let Some((index, problem)) = board_support::wifi::list_problem(&self.wifi) {
            return Err(field(
                format!("wifi[{index}].{}", problem.field),
                problem.problem,
            ));
        }
        Ok(())
    }

    /// The configuration netd runs with: the owner's `interface`, `dns`, `time` and `wifi`
    /// sections replace the image's where the owner's file has them (an empty list counts as
    /// absent); the allowlist is the image's followed by the owner's new entries, so an
    /// owner file can add names but never remove the ones the image needs.
    pub fn merged(image: &NetdConfig, owner: &NetdConfig) -> NetdConfig {
        let mut allow = image.allow.clone();
        for entry in &owner.allow {
            if !allow.contains(entry) {
                allow.push(entry.clone());
            }
        }
        NetdConfig {
            interfaces: pick_list(&image.interfaces, &owner.interfaces),
            dns: owner.dns.clone().or_else(|| image.dns.clone()),
            time: owner.time.clone().or_else(|| image.time.clone()),
            allow,
            wifi: pick_list(&image.wifi, &owner.wifi),
        }
    }

    /// The file form; [`NetdConfig::parse`] reads it back to an equal value.
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|err| Error::ConfigEncode {
            message: err.to_string(),
        })
    }
}

impl InterfaceConfig {
    fn validate(&self, index: usize) -> Result<(), Error> {
        let at = |name: &str| format!("interface[{index}].{name}");
        let name = &self.name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_INTERFACE_NAME
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !name_ok {
            return Err(field(
                at("name"),
                format!(
                    "{name:?} is not a link name: 1 to {MAX_INTERFACE_NAME} printable characters \
                     without '/' or ':' (e.g. \"eth0\", \"enp1s0\")"
                ),
            ));
        }
        match (self.ipv4, self.address) {
            (Ipv4Mode::Static, None) => {
                return Err(field(
                    at("address"),
                    format!(
                        "{name} has ipv4 = \"static\" but no address; add address = \
                         \"192.0.2.5/24\" or use ipv4 = \"dhcp\""
                    ),
                ));
            }
            (Ipv4Mode::Dhcp | Ipv4Mode::Off, Some(_)) => {
                return Err(field(
                    at("address"),
                    format!("{name}: an address needs ipv4 = \"static\""),
                ));
            }
            _ => {}
        }
        if self.gateway.is_some() && self.ipv4 != Ipv4Mode::Static {
            return Err(field(
                at("gateway"),
                format!("{name}: a gateway needs ipv4 = \"static\""),
            ));
        }
        Ok(())
    }
}

/// The owner's list where it has one, else the image's.
fn pick_list<T: Clone>(image: &[T], owner: &[T]) -> Vec<T> {
    if owner.is_empty() { image } else { owner }.to_vec()
}

fn field(field: String, problem: String) -> Error {
    Error::ConfigField { field, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[[interface]]
name = "eth0"
ipv4 = "static"
address = "192.0.2.5/24"
gateway = "192.0.2.1"
ipv6 = "off"

[[interface]]
name = "eth1"

[dns]
upstreams = ["192.0.2.53", "2001:db8::53"]

[time]
servers = ["192.0.2.123", "pool.ntp.org"]

[[allow]]
name = "api.telegram.org"
ports = [443]

[[allow]]
name = "*.feishu.cn"

[[wifi]]
ssid = "home"
passphrase = "correct horse"
"#;

    fn err(text: &str) -> String {
        NetdConfig::parse(text).expect_err(text).to_string()
    }

    #[test]
    fn a_full_file_parses_with_defaults_filled_in() {
        let config = NetdConfig::parse(FULL).unwrap();
        let eth0 = &config.interfaces[0];
        assert_eq!(eth0.address.unwrap().to_string(), "192.0.2.5/24");
        assert_eq!(eth0.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(eth0.ipv6, Ipv6Mode::Off);
        let eth1 = &config.interfaces[1];
        assert_eq!((eth1.ipv4, eth1.ipv6), (Ipv4Mode::Dhcp, Ipv6Mode::Slaac));
        assert_eq!(config.allow[1].ports, [443]);
        assert_eq!(config.time.as_ref().unwrap().servers[1], "pool.ntp.org");
        assert!(!format!("{config:?}").contains("correct horse"));
        assert_eq!(NetdConfig::parse("").unwrap(), NetdConfig::default());
        let open = NetdConfig::parse("[[wifi]]\nssid = \"cafe\"\n").unwrap();
        assert!(open.wifi[0].is_open());
    }

    #[test]
    fn to_toml_round_trips() {
        let config = NetdConfig::parse(FULL).unwrap();
        let text = config.to_toml().unwrap();
        assert_eq!(NetdConfig::parse(&text).unwrap(), config, "{text}");
        let empty = NetdConfig::default().to_toml().unwrap();
        assert_eq!(NetdConfig::parse(&empty).unwrap(), NetdConfig::default());
    }

    #[test]
    fn errors_name_the_field_and_say_what_to_do() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[interface]]\nname = \"eth0\"\nipv4 = \"static\"\n",
                &["interface[0].address", "no address"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\naddress = \"192.0.2.5/24\"\n",
                &["interface[0].address", "static"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\ngateway = \"192.0.2.1\"\n",
                &["interface[0].gateway"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\nipv4 = \"static\"\naddress = \"192.0.2.5\"\n",
                &["address", "prefix length"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\nipv4 = \"static\"\naddress = \"192.0.2.5/33\"\n",
                &["prefix length"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n",
                &["interface[1].name", "twice"],
            ),
            ("[[interface]]\nname = \"a/b\"\n", &["interface[0].name"]),
            (
                "[[interface]]\nname = \"averyverylongname\"\n",
                &["interface[0].name"],
            ),
            (
                "[[interface]]\nipv4 = \"dhcp\"\n",
                &["missing field `name`"],
            ),
            (
                "[[interface]]\nname = \"eth0\"\nipv4 = \"bootp\"\n",
                &["bootp", "dhcp"],
            ),
            (
                "[dns]\nupstreams = [\"dns.google\"]\n",
                &["upstreams", "IP address"],
            ),
            (
                "[dns]\nupstreams = [\"127.0.0.53\"]\n",
                &["dns.upstreams[0]", "loopback"],
            ),
            (
                "[time]\nservers = [\"pool..ntp.org\"]\n",
                &["time.servers[0]"],
            ),
            ("[time]\nservers = [\"*.ntp.org\"]\n", &["time.servers[0]"]),
            (
                "[[wifi]]\nssid = \"\"\npassphrase = \"12345678\"\n",
                &["wifi[0].ssid"],
            ),
            (
                "[[wifi]]\nssid = \"home\"\npassphrase = \"short\"\n",
                &["wifi[0].passphrase", "8 to 63"],
            ),
            (
                "[[wifi]]\nssid = \"home\"\npassphrase = \"tab\tinside\"\n",
                &["wifi[0].passphrase"],
            ),
            (
                "[[wifi]]\nssid = \"h\"\npassphrase = \"12345678\"\n[[wifi]]\nssid = \"h\"\npassphrase = \"12345678\"\n",
                &["wifi[1].ssid", "twice"],
            ),
            ("[[allow]]\nname = \"a..org\"\n", &["a..org", "1 to 63"]),
            ("[firewall]\n", &["unknown field `firewall`"]),
        ];
        for (text, wanted) in cases {
            let message = err(text);
            assert!(message.starts_with("netd configuration"), "{message}");
            for part in *wanted {
                assert!(message.contains(part), "{text}: {message} lacks {part}");
            }
        }
        assert!(!err("[[wifi]]\nssid = \"h\"\npassphrase = \"x\"\n").contains("\"x\""));
    }

    #[test]
    fn the_owner_replaces_sections_but_only_adds_to_the_allowlist() {
        let image = NetdConfig::parse(FULL).unwrap();
        let owner = NetdConfig::parse(
            "[dns]\nupstreams = [\"198.51.100.53\"]\n[[allow]]\nname = \"example.org\"\n\
             [[allow]]\nname = \"api.telegram.org\"\n",
        )
        .unwrap();
        let merged = NetdConfig::merged(&image, &owner);
        assert_eq!(merged.dns, owner.dns);
        assert_eq!(merged.interfaces, image.interfaces);
        assert_eq!(merged.time, image.time);
        assert_eq!(merged.wifi, image.wifi);
        let names: Vec<String> = merged.allow.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["api.telegram.org", "*.feishu.cn", "example.org"]);

        let owner = NetdConfig::parse(
            "[[interface]]\nname = \"wlan0\"\n[time]\nservers = []\n[[wifi]]\nssid = \"cafe\"\n\
             passphrase = \"12345678\"\n",
        )
        .unwrap();
        let merged = NetdConfig::merged(&image, &owner);
        assert_eq!(merged.interfaces, owner.interfaces);
        assert_eq!(merged.time, Some(TimeConfig::default()));
        assert_eq!(merged.wifi, owner.wifi);
        assert_eq!(merged.allow, image.allow);
    }
}
