//! /etc/carapace/services.toml: the static table of services PID 1 runs, in start order
//! (docs/boot-contract.md). The table is built into the same verified root as this binary,
//! so anything unexpected in it is refused rather than guessed at.

use std::path::Path;

pub use board_support::ServiceEntry;
use rustix::thread::CapabilitySet;
use serde::Deserialize;

use crate::error::{Error, Result};

pub const SERVICES_TOML: &str = "/etc/carapace/services.toml";
/// Names become paths (/data/<name>, /run/<name>, a cgroup) and console prefixes.
const MAX_NAME_LEN: usize = 32;
/// /data/log holds console.log; a service named like it would share the directory.
const RESERVED_NAMES: [&str; 2] = ["log", "lost+found"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    #[serde(default)]
    service: Vec<ServiceEntry>,
}

/// A checked service: the entry plus its capabilities as a bit set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub entry: ServiceEntry,
    pub capabilities: CapabilitySet,
}

impl Service {
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    pub fn state_directory(&self) -> Option<String> {
        self.entry
            .state_dir
            .then(|| format!("/data/{}", self.entry.name))
    }

    pub fn runtime_directory(&self) -> Option<String> {
        self.entry
            .runtime_dir
            .then(|| format!("/run/{}", self.entry.name))
    }
}

pub fn load(path: &Path) -> Result<Vec<Service>> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::Config {
        path: path.display().to_string(),
        message: format!("cannot read: {err}"),
    })?;
    parse(&text).map_err(|message| Error::Config {
        path: path.display().to_string(),
        message,
    })
}

pub fn parse(text: &str) -> std::result::Result<Vec<Service>, String> {
    let file: ServiceFile =
        toml::from_str(text).map_err(|err| err.to_string().trim_end().replace('\n', " "))?;
    let mut services: Vec<Service> = Vec::new();
    for (index, entry) in file.service.into_iter().enumerate() {
        let service =
            check(entry).map_err(|message| format!("[[service]] #{}: {message}", index + 1))?;
        if services.iter().any(|s| s.name() == service.name()) {
            return Err(format!(
                "[[service]] #{}: name: \"{}\" is used twice",
                index + 1,
                service.name()
            ));
        }
        services.push(service);
    }
    Ok(services)
}

fn check(entry: ServiceEntry) -> std::result::Result<Service, String> {
    let name = &entry.name;
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "name: {name:?} must be 1 to {MAX_NAME_LEN} of a-z, 0-9, '-', '_', starting with a letter"
        ));
    }
    if RESERVED_NAMES.contains(&name.as_str()) {
        return Err(format!("name: {name:?} is reserved"));
    }
    let Some(program) = entry.exec.first() else {
        return Err(format!("exec: service {name} has an empty command"));
    };
    if !program.starts_with('/') {
        return Err(format!(
            "exec: service {name}: {program:?} is not an absolute path"
        ));
    }
    if entry.exec.iter().any(|arg| arg.contains('\0')) {
        return Err(format!("exec: service {name}: an argument contains a NUL"));
    }
    // -1 means "unchanged" to setresuid/setresgid.
    if entry.uid == u32::MAX {
        return Err(format!(
            "uid: service {name}: {} is not a user id",
            entry.uid
        ));
    }
    if entry.gid == u32::MAX {
        return Err(format!(
            "gid: service {name}: {} is not a group id",
            entry.gid
        ));
    }
    if entry.memory_max == Some(0) {
        return Err(format!(
            "memory_max: service {name}: 0 bytes would kill it at once; leave it out for no limit"
        ));
    }
    let mut capabilities = CapabilitySet::empty();
    for cap in &entry.capabilities {
        let known = cap.strip_prefix("CAP_").and_then(CapabilitySet::from_name);
        match known {
            Some(bit) => capabilities |= bit,
            None => {
                return Err(format!(
                    "capabilities: service {name}: unknown capability {cap:?} (expected e.g. \"CAP_NET_ADMIN\")"
                ));
            }
        }
    }
    Ok(Service {
        entry,
        capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
# netd (links, DHCP, time, DNS firewall) is the next issue; it starts before agentd.

[[service]]
name = "agentd"
exec = ["/usr/bin/agentd"]
uid = 1000
gid = 1000
memory_max = 268435456        # bytes, written to memory.max of /sys/fs/cgroup/services/<name>
capabilities = []             # names kept in the bounding and ambient sets, e.g. "CAP_NET_ADMIN"
ready = true                  # PID 1 prints the ready line once every `ready` service said READY=1
watchdog_sec = 30             # 0 = none; no WATCHDOG=1 within this long = unhealthy
state_dir = true              # /data/<name>, 0700, owned by uid:gid; passed as $STATE_DIRECTORY
runtime_dir = true            # /run/<name>, 0755, owned by uid:gid; passed as $RUNTIME_DIRECTORY
"#;

    fn with(extra: &str) -> String {
        format!("[[service]]\nname = \"x\"\nexec = [\"/bin/x\"]\nuid = 1\ngid = 1\n{extra}\n")
    }

    #[test]
    fn parses_the_contract_example() {
        let services = parse(CONTRACT_EXAMPLE).expect("parse");
        assert_eq!(services.len(), 1);
        let agentd = &services[0];
        assert_eq!(
            agentd.entry,
            ServiceEntry {
                name: "agentd".to_owned(),
                exec: vec!["/usr/bin/agentd".to_owned()],
                uid: 1000,
                gid: 1000,
                memory_max: Some(268_435_456),
                capabilities: vec![],
                ready: true,
                watchdog_sec: 30,
                state_dir: true,
                runtime_dir: true,
            }
        );
        assert_eq!(agentd.capabilities, CapabilitySet::empty());
        assert_eq!(agentd.state_directory().as_deref(), Some("/data/agentd"));
        assert_eq!(agentd.runtime_directory().as_deref(), Some("/run/agentd"));
    }

    #[test]
    fn optional_fields_default_to_off() {
        let services = parse(&with("")).expect("parse");
        let entry = &services[0].entry;
        assert_eq!(
            (entry.memory_max, entry.ready, entry.watchdog_sec),
            (None, false, 0)
        );
        assert!(!entry.state_dir && !entry.runtime_dir && entry.capabilities.is_empty());
        assert_eq!(services[0].state_directory(), None);
        assert!(parse("").expect("empty file").is_empty());
    }

    #[test]
    fn capabilities_become_bits() {
        let services = parse(&with(
            r#"capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_CHECKPOINT_RESTORE"]"#,
        ))
        .expect("parse");
        assert_eq!(
            services[0].capabilities.bits(),
            (1 << 12) | (1 << 13) | (1 << 40)
        );
        let err = parse(&with(r#"capabilities = ["NET_ADMIN"]"#)).expect_err("no CAP_ prefix");
        assert!(
            err.contains("capabilities") && err.contains("NET_ADMIN"),
            "{err}"
        );
        assert!(parse(&with(r#"capabilities = ["CAP_FLY"]"#)).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let missing =
            parse("[[service]]\nname = \"x\"\nexec = [\"/bin/x\"]\ngid = 1\n").expect_err("no uid");
        assert!(missing.contains("uid"), "{missing}");
        let unknown = parse(&with("watchdog_secs = 3")).expect_err("typo");
        assert!(unknown.contains("watchdog_secs"), "{unknown}");
        let wrong_type = parse(&with("ready = \"yes\"")).expect_err("type");
        assert!(wrong_type.contains("ready"), "{wrong_type}");
        let negative = parse(&with("memory_max = -1")).expect_err("negative");
        assert!(negative.contains("memory_max"), "{negative}");
        let zero = parse(&with("memory_max = 0")).expect_err("zero");
        assert!(zero.starts_with("[[service]] #1: memory_max"), "{zero}");
    }

    #[test]
    fn names_and_commands_are_checked() {
        for bad in ["", "Agentd", "a/b", "..", "1x", "log", &"a".repeat(33)] {
            let text =
                format!("[[service]]\nname = {bad:?}\nexec = [\"/bin/x\"]\nuid = 1\ngid = 1\n");
            let err = parse(&text).expect_err(bad);
            assert!(err.contains("name"), "{bad}: {err}");
        }
        let relative = "[[service]]\nname = \"x\"\nexec = [\"agentd\"]\nuid = 1\ngid = 1\n";
        assert!(parse(relative).expect_err("relative").contains("exec"));
        let empty = "[[service]]\nname = \"x\"\nexec = []\nuid = 1\ngid = 1\n";
        assert!(parse(empty).expect_err("empty").contains("exec"));
        let twice = format!("{}{}", with(""), with(""));
        assert!(parse(&twice).expect_err("twice").contains("used twice"));
        assert!(parse(&with("").replace("uid = 1", "uid = 4294967295")).is_err());
    }
}
