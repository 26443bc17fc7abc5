//! /etc/carapace/services.toml: the static table of services PID 1 runs, in start order
//! (docs/boot-contract.md). The table is built into the same verified root as this binary and
//! checked by the same code the builder ran (board-support's `ServiceTable`), so anything
//! unexpected in it is refused rather than guessed at.

use std::path::Path;

pub use board_support::ServiceEntry;
use board_support::ServiceTable;
use rustix::thread::CapabilitySet;

use crate::error::{Error, Result};

pub const SERVICES_TOML: &str = "/etc/carapace/services.toml";

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
        self.entry.state_directory()
    }

    pub fn runtime_directory(&self) -> Option<String> {
        self.entry.runtime_directory()
    }
}

pub fn load(path: &Path) -> Result<Vec<Service>> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::Config {
        path: path.display().to_string(),
        message: format!("cannot read: {err}"),
    })?;
    parse(&text).map_err(|err| Error::Config {
        path: path.display().to_string(),
        message: err.to_string(),
    })
}

pub fn parse(text: &str) -> std::result::Result<Vec<Service>, board_support::Error> {
    let table = ServiceTable::parse(text)?;
    table
        .services
        .into_iter()
        .map(|entry| {
            let bits = entry.capability_bits()?;
            Ok(Service {
                entry,
                capabilities: CapabilitySet::from_bits_retain(bits),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"
[[service]]
name = "agentd"
exec = ["/usr/bin/agentd"]
uid = 1000
gid = 1000
memory_max = 268435456        # bytes, written to memory.max of /sys/fs/cgroup/services/<name>
pids_max = 256                # written to pids.max of the same cgroup (256 when left out)
capabilities = []             # names kept in the bounding and ambient sets, e.g. "CAP_NET_ADMIN"
ready = true                  # PID 1 prints the ready line once every `ready` service said READY=1
watchdog_sec = 30             # 0 = none, at most 3600; no WATCHDOG=1 within this long = unhealthy
state_dir = true              # /data/<name>, 0700, owned by uid:gid; passed as $STATE_DIRECTORY
runtime_dir = true            # /run/<name>, 0755, owned by uid:gid; passed as $RUNTIME_DIRECTORY
after = []                    # services (earlier, ready = true) whose READY=1 this one waits for
"#;

    #[test]
    fn parses_the_contract_example() {
        let services = parse(CONTRACT_EXAMPLE).expect("parse");
        let agentd = &services[0];
        assert_eq!(agentd.entry.memory_max, 268_435_456);
        assert_eq!(agentd.entry.pids_limit(), 256);
        assert!(agentd.entry.ready && agentd.entry.watchdog_sec == 30);
        assert_eq!(agentd.capabilities, CapabilitySet::empty());
        assert_eq!(agentd.state_directory().as_deref(), Some("/data/agentd"));
        assert_eq!(agentd.runtime_directory().as_deref(), Some("/run/agentd"));
    }

    #[test]
    fn capabilities_become_rustix_bits() {
        let text = CONTRACT_EXAMPLE.replace(
            "capabilities = []",
            r#"capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_CHECKPOINT_RESTORE"]"#,
        );
        let services = parse(&text).expect("parse");
        assert_eq!(
            services[0].capabilities,
            CapabilitySet::NET_ADMIN | CapabilitySet::NET_RAW | CapabilitySet::CHECKPOINT_RESTORE
        );
        let bad = CONTRACT_EXAMPLE.replace("capabilities = []", r#"capabilities = ["NET_ADMIN"]"#);
        let err = parse(&bad).expect_err("no CAP_ prefix").to_string();
        assert!(err.contains("`capabilities`"), "{err}");
    }
}
