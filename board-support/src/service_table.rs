//! PID 1's whole service table: parsed and checked by the same code in the builder (at recipe
//! load, so a bad table fails the build) and in PID 1 (at boot, the table on the verified
//! root). Row checks are [`ServiceEntry::validate`]; this adds the checks across rows.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::service_entry::{NetworkRole, ServiceEntry};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    /// In start order.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceEntry>,
}

impl ServiceTable {
    /// Parses services.toml and validates it.
    pub fn parse(text: &str) -> Result<ServiceTable, Error> {
        let table: ServiceTable =
            toml::from_str(text).map_err(|err| Error::ServiceTableSyntax {
                message: err.to_string().trim_end().replace('\n', " "),
            })?;
        ServiceTable::validate(&table.services)?;
        Ok(table)
    }

    /// Every row on its own, then: names are unique, and each name in `after` is an earlier
    /// service that says READY=1 (so the order is the start order and cannot deadlock).
    pub fn validate(services: &[ServiceEntry]) -> Result<(), Error> {
        for (index, entry) in services.iter().enumerate() {
            entry.validate()?;
            let earlier = services.get(..index).unwrap_or_default();
            if earlier.iter().any(|e| e.name == entry.name) {
                return Err(field(entry, "name", "is used twice".to_owned()));
            }
            for (position, wanted) in entry.after.iter().enumerate() {
                if entry
                    .after
                    .get(..position)
                    .unwrap_or_default()
                    .contains(wanted)
                {
                    return Err(field(entry, "after", format!("names {wanted:?} twice")));
                }
                match earlier.iter().find(|e| &e.name == wanted) {
                    None => {
                        return Err(field(
                            entry,
                            "after",
                            format!("{wanted:?} is not a service earlier in the table"),
                        ));
                    }
                    Some(e) if !e.ready => {
                        return Err(field(
                            entry,
                            "after",
                            format!(
                                "{wanted:?} does not have ready = true, so it never says READY=1"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            check_network_role(entry, earlier)?;
            if entry.owner_settings
                && let Some(first) = earlier.iter().find(|e| e.owner_settings)
            {
                return Err(field(
                    entry,
                    "owner_settings",
                    format!(
                        "{:?} already receives the owner settings; only one service may",
                        first.name
                    ),
                ));
            }
            // Two services writing the same slot and entries would undo each other's work.
            if entry.boot_control
                && let Some(first) = earlier.iter().find(|e| e.boot_control)
            {
                return Err(field(
                    entry,
                    "boot_control",
                    format!(
                        "{:?} already controls the boot slots; only one service may",
                        first.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One netd; an egress service starts after it, so the firewall's sets are being filled
/// (and names resolve) before the service's first connection.
fn check_network_role(entry: &ServiceEntry, earlier: &[ServiceEntry]) -> Result<(), Error> {
    let netd = earlier
        .iter()
        .find(|e| e.network == Some(NetworkRole::Netd));
    match (entry.network, netd) {
        (Some(NetworkRole::Netd), Some(first)) => Err(field(
            entry,
            "network",
            format!(
                "\"netd\" is already the role of {:?}; only one service runs netd",
                first.name
            ),
        )),
        (Some(NetworkRole::Egress), None) => Err(field(
            entry,
            "network",
            "\"egress\" needs a service with network = \"netd\" earlier in the table".to_owned(),
        )),
        (Some(NetworkRole::Egress), Some(netd)) if !entry.after.contains(&netd.name) => Err(field(
            entry,
            "after",
            format!(
                "an egress service must start after netd: add {:?} to `after`",
                netd.name
            ),
        )),
        _ => Ok(()),
    }
}

fn field(entry: &ServiceEntry, field: &'static str, problem: String) -> Error {
    Error::ServiceField {
        service: entry.name.clone(),
        field,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, extra: &str) -> String {
        format!(
            "[[service]]\nname = {name:?}\nexec = [\"/bin/x\"]\nuid = 1\ngid = 1\nmemory_max = 4194304\n{extra}\n"
        )
    }

    fn err(text: &str) -> String {
        ServiceTable::parse(text).expect_err(text).to_string()
    }

    #[test]
    fn parses_defaults() {
        let table = ServiceTable::parse(&row("x", "")).expect("parse");
        let entry = &table.services[0];
        assert_eq!(
            (entry.ready, entry.watchdog_sec, entry.pids_limit()),
            (false, 0, 256)
        );
        assert!(entry.after.is_empty() && entry.capabilities.is_empty());
        assert_eq!(entry.state_directory(), None);
        assert!(ServiceTable::parse("").expect("empty").services.is_empty());
    }

    #[test]
    fn errors_name_the_service_and_the_field() {
        let e = err(&row("x", r#"capabilities = ["NET_ADMIN"]"#));
        assert!(
            e.contains("service x") && e.contains("`capabilities`") && e.contains("NET_ADMIN"),
            "{e}"
        );
        assert!(err(&row("x", "uid = 0").replace("uid = 1\n", "")).contains("`uid`"));
        assert!(err(&row("x", "").replace("gid = 1", "gid = 0")).contains("`gid`"));
        assert!(err(&row("x", "").replace("4194304", "1000")).contains("`memory_max`"));
        assert!(err(&row("x", "pids_max = 0")).contains("`pids_max`"));
        assert!(err(&row("x", "watchdog_sec = 3601")).contains("`watchdog_sec`"));
        assert!(err(&row("x", "watchdog_sec = 18446744073709551615")).contains("`watchdog_sec`"));
        assert!(ServiceTable::parse(&row("x", "watchdog_sec = 3600")).is_ok());
        assert!(err(&row("x", "").replace("/bin/x", "x")).contains("`exec`"));
        assert!(err(&row("x", "").replace("[\"/bin/x\"]", "[]")).contains("`exec`"));
        assert!(err(&row("x", "watchdog_secs = 3")).contains("watchdog_secs"));
        assert!(err(&row("x", "ready = \"yes\"")).contains("ready"));
        for bad in ["", "Agentd", "a/b", "..", "1x", &"a".repeat(33)] {
            assert!(err(&row(bad, "")).contains("`name`"), "{bad}");
        }
    }

    #[test]
    fn names_are_unique() {
        let e = err(&format!("{}{}", row("x", ""), row("x", "")));
        assert!(e.contains("`name`") && e.contains("twice"), "{e}");
    }

    #[test]
    fn after_names_an_earlier_ready_service() {
        let ready = row("a", "ready = true");
        let ok = format!("{ready}{}", row("b", r#"after = ["a"]"#));
        assert_eq!(
            ServiceTable::parse(&ok).expect("ok").services[1].after,
            ["a"]
        );
        let later = format!("{}{}", row("b", r#"after = ["a"]"#), ready);
        assert!(err(&later).contains("not a service earlier"));
        let unknown = format!("{ready}{}", row("b", r#"after = ["c"]"#));
        assert!(err(&unknown).contains("`after`"));
        let not_ready = format!("{}{}", row("a", ""), row("b", r#"after = ["a"]"#));
        assert!(err(&not_ready).contains("ready = true"));
        let itself = row("a", "ready = true\nafter = [\"a\"]");
        assert!(err(&itself).contains("`after`"));
        let twice = format!("{ready}{}", row("b", r#"after = ["a", "a"]"#));
        assert!(err(&twice).contains("twice"));
    }

    #[test]
    fn one_service_with_a_state_dir_receives_the_owner_settings() {
        let agentd = row("agentd", "state_dir = true\nowner_settings = true");
        let table = ServiceTable::parse(&agentd).expect("ok");
        assert!(table.services[0].owner_settings);
        let e = err(&row("agentd", "owner_settings = true"));
        assert!(
            e.contains("`owner_settings`") && e.contains("state_dir"),
            "{e}"
        );
        let second = row("other", "state_dir = true\nowner_settings = true");
        let e = err(&format!("{agentd}{second}"));
        assert!(e.contains("service other") && e.contains("only one"), "{e}");
    }

    #[test]
    fn one_service_controls_the_boot_slots() {
        let updated = row("updated", "boot_control = true");
        let table = ServiceTable::parse(&updated).expect("ok");
        assert!(table.services[0].boot_control);
        let written = toml::to_string(&table).expect("write");
        assert!(written.contains("boot_control = true"), "{written}");
        let plain = toml::to_string(&ServiceTable::parse(&row("x", "")).expect("ok"));
        assert!(!plain.expect("write").contains("boot_control"));
        let second = row("other", "boot_control = true");
        let e = err(&format!("{updated}{second}"));
        assert!(
            e.contains("service other") && e.contains("`boot_control`") && e.contains("only one"),
            "{e}"
        );
        assert!(err(&row("x", "boot_control = 1")).contains("boot_control"));
    }

    #[test]
    fn a_tty_is_a_virtual_terminal() {
        let ok = ServiceTable::parse(&row("agentd", "tty = \"tty1\"")).expect("ok");
        assert_eq!(ok.services[0].tty.as_deref(), Some("tty1"));
        for bad in ["tty0", "ttyS0", "tty64", "tty01", "../sda", "tty"] {
            let e = err(&row("agentd", &format!("tty = {bad:?}")));
            assert!(
                e.contains("`tty`") && e.contains("virtual terminal"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn one_netd_and_egress_services_after_it() {
        let netd = row("netd", "ready = true\nnetwork = \"netd\"");
        let egress = row("agentd", "after = [\"netd\"]\nnetwork = \"egress\"");
        let table = ServiceTable::parse(&format!("{netd}{egress}")).expect("ok");
        assert_eq!(table.services[0].network, Some(NetworkRole::Netd));
        assert_eq!(table.services[1].network, Some(NetworkRole::Egress));

        let second = row("netd2", "network = \"netd\"");
        let e = err(&format!("{netd}{second}"));
        assert!(
            e.contains("service netd2") && e.contains("`network`") && e.contains("only one"),
            "{e}"
        );
        let e = err(&egress.replace("after = [\"netd\"]\n", ""));
        assert!(
            e.contains("service agentd") && e.contains("`network`") && e.contains("earlier"),
            "{e}"
        );
        let e = err(&format!("{egress}{netd}"));
        assert!(e.contains("service agentd"), "{e}");
        let not_after = row("agentd", "network = \"egress\"");
        let e = err(&format!("{netd}{not_after}"));
        assert!(
            e.contains("service agentd") && e.contains("`after`") && e.contains("\"netd\""),
            "{e}"
        );
        let e = err(&row("x", "network = \"router\""));
        assert!(e.contains("router") && e.contains("egress"), "{e}");
    }

    #[test]
    fn a_table_round_trips_through_toml() {
        let text = format!(
            "{}{}",
            row("a", "ready = true\ncapabilities = [\"CAP_SYSLOG\"]"),
            row("b", "after = [\"a\"]\npids_max = 10\nnetwork = \"netd\"")
        );
        let table = ServiceTable::parse(&text).expect("parse");
        let written = toml::to_string(&table).expect("write");
        assert_eq!(ServiceTable::parse(&written).expect("reparse"), table);
        assert_eq!(table.services[0].capability_bits().expect("caps"), 1 << 34);
    }
}
