//! The files a networked image carries (a recipe with a netd service and `[network]`): the
//! base firewall PID 1 loads, netd's default configuration, and the resolver configuration
//! that sends every service's lookups to netd's DNS stub. Same recipe, same bytes.

use board_support::NetworkRole;
use carapace_netpolicy::config::{DnsConfig, IMAGE_CONFIG_PATH, TimeConfig};
use carapace_netpolicy::{
    AllowEntry, BASE_RULESET_PATH, FirewallUids, NamePattern, NetdConfig, base_ruleset,
    default_allowlist,
};

use crate::error::{Error, Result};
use crate::recipe::{NetworkSection, Recipe, UpdateSection};

/// glibc's resolver asks the stub; nothing else is reachable on port 53 anyway.
pub const RESOLV_CONF: &str = "nameserver 127.0.0.53\n";
/// Names resolve from /etc/hosts first (localhost), then DNS.
pub const NSSWITCH_CONF: &str = "hosts: files dns\n";

pub struct NetworkFile {
    pub path: &'static str,
    pub bytes: Vec<u8>,
}

/// netd's defaults from the recipe: the allowlist (the IM services', LLM and update hosts, the
/// host of `[update] server` at its port, the extra entries, then the hosts the skills' code
/// declares, at 443), NTP servers, DNS resolvers and Wi-Fi networks; interfaces are left to
/// netd's defaults and the owner's file.
pub fn image_netd_config(
    network: &NetworkSection,
    update: Option<&UpdateSection>,
    skill_hosts: &[String],
) -> std::result::Result<NetdConfig, String> {
    let mut allow = default_allowlist(
        &network.im,
        network.llm.as_ref(),
        network.update_server.as_ref(),
    );
    let update_entry = update.map(update_server_entry).transpose()?;
    let skill_entries = skill_hosts
        .iter()
        .map(|host| {
            let name: NamePattern = host
                .parse()
                .map_err(|err| format!("a skill's host {host}: {err}"))?;
            AllowEntry::new(name, &[443]).map_err(|err| format!("a skill's host {host}: {err}"))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    for entry in update_entry
        .iter()
        .chain(&network.allow)
        .chain(&skill_entries)
    {
        if !allow.contains(entry) {
            allow.push(entry.clone());
        }
    }
    Ok(NetdConfig {
        interfaces: Vec::new(),
        dns: (!network.dns_upstreams.is_empty()).then(|| DnsConfig {
            upstreams: network.dns_upstreams.clone(),
        }),
        time: (!network.time_servers.is_empty()).then(|| TimeConfig {
            servers: network.time_servers.clone(),
        }),
        allow,
        wifi: network.wifi.clone(),
    })
}

/// The update service reaches its repository by name like every other egress.
fn update_server_entry(update: &UpdateSection) -> std::result::Result<AllowEntry, String> {
    let (host, port) = update
        .update_config()?
        .server_host()
        .map_err(|err| err.to_string())?;
    let name: NamePattern = host
        .parse()
        .map_err(|err| format!("[update] server host: {err}"))?;
    AllowEntry::new(name, &[port]).map_err(|err| format!("[update] server port: {err}"))
}

/// Who the firewall lets out: netd's uid and each egress service's, in table order.
pub fn firewall_uids(recipe: &Recipe) -> Option<FirewallUids> {
    let netd = recipe.netd_service()?;
    let mut egress = Vec::new();
    for service in &recipe.services {
        if service.network == Some(NetworkRole::Egress) && !egress.contains(&service.uid) {
            egress.push(service.uid);
        }
    }
    Some(FirewallUids {
        netd: netd.uid,
        egress,
    })
}

/// The files to add to the root; none for a recipe without netd.
pub fn network_files(recipe: &Recipe) -> Result<Vec<NetworkFile>> {
    let (Some(network), Some(uids)) = (&recipe.network, firewall_uids(recipe)) else {
        return Ok(Vec::new());
    };
    let mut firewall = serde_json::to_vec_pretty(&base_ruleset(&uids))
        .map_err(|e| Error::image(format!("cannot write {BASE_RULESET_PATH}: {e}")))?;
    firewall.push(b'\n');
    let netd_toml = image_netd_config(network, recipe.update.as_ref(), &recipe.skill_hosts())
        .map_err(|e| Error::image(format!("cannot write {IMAGE_CONFIG_PATH}: {e}")))?
        .to_toml()
        .map_err(|e| Error::image(format!("cannot write {IMAGE_CONFIG_PATH}: {e}")))?;
    let netd_toml = format!(
        "# netd's defaults, generated from recipe '{}'. The owner's /data/netd/config.toml\n\
         # replaces [[interface]], [dns], [time] and [[wifi]]; its [[allow]] entries only add.\n\n\
         {netd_toml}",
        recipe.name
    );
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{}\n",
        recipe.hostname
    );
    Ok(vec![
        NetworkFile {
            path: BASE_RULESET_PATH,
            bytes: firewall,
        },
        NetworkFile {
            path: IMAGE_CONFIG_PATH,
            bytes: netd_toml.into_bytes(),
        },
        NetworkFile {
            path: "/etc/resolv.conf",
            bytes: RESOLV_CONF.into(),
        },
        NetworkFile {
            path: "/etc/nsswitch.conf",
            bytes: NSSWITCH_CONF.into(),
        },
        NetworkFile {
            path: "/etc/hosts",
            bytes: hosts.into_bytes(),
        },
    ])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use carapace_netpolicy::Allowlist;

    use super::*;

    fn shipped(name: &str) -> Recipe {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../recipes")
            .join(name);
        Recipe::load(&path).unwrap().0
    }

    fn file<'f>(files: &'f [NetworkFile], path: &str) -> &'f [u8] {
        &files.iter().find(|f| f.path == path).expect(path).bytes
    }

    #[test]
    fn the_default_image_gets_the_firewall_netd_defaults_and_the_stub_resolver() {
        let recipe = shipped("x86-64-qemu.toml");
        let files = network_files(&recipe).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "/etc/carapace/firewall.json",
                "/etc/carapace/netd.toml",
                "/etc/resolv.conf",
                "/etc/nsswitch.conf",
                "/etc/hosts"
            ]
        );
        let uids = firewall_uids(&recipe).unwrap();
        assert_eq!(
            uids,
            FirewallUids {
                netd: 1002,
                egress: vec![1000]
            }
        );
        let firewall = file(&files, BASE_RULESET_PATH);
        let expected = serde_json::to_vec_pretty(&base_ruleset(&uids)).unwrap();
        assert_eq!(firewall, [expected.as_slice(), b"\n"].concat());

        let netd = std::str::from_utf8(file(&files, IMAGE_CONFIG_PATH)).unwrap();
        let config = NetdConfig::parse(netd).unwrap();
        let expected = image_netd_config(recipe.network.as_ref().unwrap(), None, &[]).unwrap();
        assert_eq!(config, expected);
        let allowlist = Allowlist::new(config.allow);
        assert_eq!(allowlist.ports("api.telegram.org"), Some(vec![443]));
        assert_eq!(allowlist.ports("api.openai.com"), Some(vec![443]));
        assert_eq!(allowlist.ports("example.org"), None);
        assert_eq!(file(&files, "/etc/resolv.conf"), b"nameserver 127.0.0.53\n");
        assert!(file(&files, "/etc/hosts").ends_with(b"127.0.1.1\tcarapace\n"));
    }

    #[test]
    fn the_same_recipe_gives_the_same_bytes() {
        let recipe = shipped("x86-64-qemu-test.toml");
        let once = network_files(&recipe).unwrap();
        let again = network_files(&recipe).unwrap();
        assert_eq!(once.len(), again.len());
        for (a, b) in once.iter().zip(&again) {
            assert_eq!((a.path, &a.bytes), (b.path, &b.bytes));
        }
        let netd = std::str::from_utf8(file(&once, IMAGE_CONFIG_PATH)).unwrap();
        let config = NetdConfig::parse(netd).unwrap();
        assert_eq!((config.dns, config.time), (None, None), "{netd}");
        assert!(Allowlist::new(config.allow).ports("allowed.test").is_some());
    }

    #[test]
    fn a_recipe_without_netd_gets_no_network_files() {
        let mut recipe = shipped("x86-64-qemu.toml");
        recipe.services.retain(|s| s.network.is_none());
        recipe.network = None;
        assert!(firewall_uids(&recipe).is_none());
        assert!(network_files(&recipe).unwrap().is_empty());
    }

    #[test]
    fn the_update_servers_host_is_allowed_at_its_port() {
        let network: NetworkSection = toml::from_str("llm = \"api.openai.com\"\n").unwrap();
        let update = |server: &str| -> UpdateSection {
            toml::from_str(&format!(
                "root_key = \"00\"\nkey_list = \"keys.json\"\nserver = \"{server}\"\n"
            ))
            .unwrap()
        };
        let allowlist = |server: &str| {
            Allowlist::new(
                image_netd_config(&network, Some(&update(server)), &[])
                    .unwrap()
                    .allow,
            )
        };
        let custom = allowlist("https://updates.example.com:8443/x86-64");
        assert_eq!(custom.ports("updates.example.com"), Some(vec![8443]));
        assert_eq!(custom.ports("api.openai.com"), Some(vec![443]));
        let plain = allowlist("https://updates.example.com/x86-64");
        assert_eq!(plain.ports("updates.example.com"), Some(vec![443]));
        assert_eq!(plain.ports("example.com"), None);
        let without = Allowlist::new(image_netd_config(&network, None, &[]).unwrap().allow);
        assert_eq!(without.ports("updates.example.com"), None);
        let err = image_netd_config(&network, Some(&update("http://updates.example.com")), &[])
            .unwrap_err();
        assert!(err.contains("[update] server"), "{err}");
    }

    #[test]
    fn extra_entries_follow_the_defaults_once() {
        let network: NetworkSection = toml::from_str(
            "im = [\"lark\"]\nupdate_server = \"updates.example.org\"\n\
             allow = [{ name = \"updates.example.org\" }, { name = \"x.example.org\", ports = [22] }]\n\
             time_servers = [\"pool.ntp.org\"]\ndns_upstreams = [\"192.0.2.53\"]\n",
        )
        .unwrap();
        let skill_hosts = [
            "weather.example.net".to_string(),
            "x.example.org".to_string(),
        ];
        let config = image_netd_config(&network, None, &skill_hosts).unwrap();
        let names: Vec<String> = config.allow.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "open.larksuite.com",
                "*.larksuite.com",
                "updates.example.org",
                "x.example.org",
                "weather.example.net",
                "x.example.org"
            ]
        );
        assert_eq!(config.allow[4].ports, [443]);
        assert_eq!(config.time.unwrap().servers, ["pool.ntp.org"]);
        assert_eq!(
            config.dns.unwrap().upstreams,
            ["192.0.2.53".parse::<std::net::IpAddr>().unwrap()]
        );
    }
}
