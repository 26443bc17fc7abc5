//! The base ruleset PID 1 loads before any link is up: nothing reaches the box, the box
//! reaches only what netd puts into the sets. Written with plain constructs that both
//! Debian bookworm's nft (1.0.6) and trixie's (1.1.x) read.

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::expr::MetaKey;
use nftables::schema::{
    Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::Statement;
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::names::{
    CHAIN_FORWARD, CHAIN_INPUT, CHAIN_OUTPUT, COMMENT_FORWARD_DROP, COMMENT_INPUT_DROP,
    COMMENT_OUTPUT_DROP, SET_ALLOW4, SET_ALLOW6, SET_NETD4, SET_NETD6, TABLE,
};
use crate::ruleset_expr::{
    accept, concat, counter, ct_state, drop, has_any, is, meta, named_set, number, payload, set_of,
    word, words,
};

/// Where the image carries the base ruleset, as `nft -j` JSON; PID 1 loads it with
/// `nft -j -f` before any link is up.
pub const BASE_RULESET_PATH: &str = "/etc/carapace/firewall.json";

/// Who may send what: netd talks to its resolvers, NTP servers and DHCP servers; the egress
/// services (agentd) reach the allow sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallUids {
    pub netd: u32,
    pub egress: Vec<u32>,
}

/// The `filter` hook priority.
const PRIORITY_FILTER: i32 = 0;

/// ICMP errors the box needs to hear about its own connections (path MTU, unreachable).
/// Echo requests are left out: the box does not answer pings.
const ICMP_IN: [&str; 3] = [
    "destination-unreachable",
    "time-exceeded",
    "parameter-problem",
];
const ICMPV6_ERRORS_IN: [&str; 4] = [
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
];
/// Neighbour discovery and router adverts (SLAAC); hop limit 255 proves they were not
/// routed (RFC 4861).
const ICMPV6_ND_IN: [&str; 3] = [
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
];
/// What the kernel itself sends for SLAAC, ND and multicast listening.
const ICMPV6_OUT: [&str; 4] = [
    "nd-router-solicit",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld2-listener-report",
];

/// The whole table. Loading it replaces any earlier `inet carapace` table in the same
/// transaction (add, delete, add), so loading it twice gives one table, not doubled rules;
/// it also empties the sets, which is why only PID 1 loads it, once, at boot.
pub fn base_ruleset(uids: &FirewallUids) -> Nftables<'static> {
    let mut commands = vec![
        add(NfListObject::Table(table())),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        add(NfListObject::Table(table())),
    ];
    for (name, address) in [
        (SET_ALLOW4, SetType::Ipv4Addr),
        (SET_ALLOW6, SetType::Ipv6Addr),
    ] {
        commands.push(add(set(name, vec![address, SetType::InetService])));
    }
    for (name, address) in [
        (SET_NETD4, SetType::Ipv4Addr),
        (SET_NETD6, SetType::Ipv6Addr),
    ] {
        commands.push(add(set(
            name,
            vec![address, SetType::InetProto, SetType::InetService],
        )));
    }
    for (name, hook) in [
        (CHAIN_INPUT, NfHook::Input),
        (CHAIN_OUTPUT, NfHook::Output),
        (CHAIN_FORWARD, NfHook::Forward),
    ] {
        commands.push(add(NfListObject::Chain(base_chain(name, hook))));
    }
    let rules = input_rules()
        .into_iter()
        .map(|r| (CHAIN_INPUT, r))
        .chain(output_rules(uids).into_iter().map(|r| (CHAIN_OUTPUT, r)))
        .chain([(CHAIN_FORWARD, counted_drop(COMMENT_FORWARD_DROP))]);
    for (chain, (expr, comment)) in rules {
        commands.push(add(NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            chain: Cow::Borrowed(chain),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: comment.map(Cow::Borrowed),
        })));
    }
    Nftables {
        objects: Cow::Owned(commands),
    }
}

type RuleSpec = (Vec<Statement<'static>>, Option<&'static str>);

fn input_rules() -> Vec<RuleSpec> {
    let icmp_type = || payload("icmp", "type");
    let icmpv6_type = || payload("icmpv6", "type");
    vec![
        plain(vec![is(meta(MetaKey::Iif), word("lo")), accept()]),
        plain(vec![established_or_related(), accept()]),
        plain(vec![
            has_any(ct_state(), vec![word("invalid")]),
            counter(),
            drop(),
        ]),
        // DHCP offers and acks come from a server the box has no connection with yet.
        plain(vec![
            is(payload("udp", "sport"), number(67)),
            is(payload("udp", "dport"), number(68)),
            accept(),
        ]),
        plain(vec![
            is(payload("udp", "sport"), number(547)),
            is(payload("udp", "dport"), number(546)),
            accept(),
        ]),
        plain(vec![is(icmp_type(), words(&ICMP_IN)), accept()]),
        plain(vec![is(icmpv6_type(), words(&ICMPV6_ERRORS_IN)), accept()]),
        plain(vec![
            is(icmpv6_type(), words(&ICMPV6_ND_IN)),
            is(payload("ip6", "hoplimit"), number(255)),
            accept(),
        ]),
        counted_drop(COMMENT_INPUT_DROP),
    ]
}

fn output_rules(uids: &FirewallUids) -> Vec<RuleSpec> {
    let netd = || is(meta(MetaKey::Skuid), number(uids.netd));
    let mut rules = vec![
        plain(vec![is(meta(MetaKey::Oif), word("lo")), accept()]),
        plain(vec![established_or_related(), accept()]),
        plain(vec![
            netd(),
            is(payload("udp", "sport"), number(68)),
            is(payload("udp", "dport"), number(67)),
            accept(),
        ]),
        plain(vec![
            netd(),
            is(payload("udp", "dport"), number(547)),
            accept(),
        ]),
    ];
    for (address, set) in [
        (payload("ip", "daddr"), SET_NETD4),
        (payload("ip6", "daddr"), SET_NETD6),
    ] {
        rules.push(plain(vec![
            netd(),
            is(
                concat(vec![
                    address,
                    meta(MetaKey::L4proto),
                    payload("th", "dport"),
                ]),
                named_set(set),
            ),
            accept(),
        ]));
    }
    rules.push(plain(vec![
        is(payload("icmpv6", "type"), words(&ICMPV6_OUT)),
        accept(),
    ]));
    if !uids.egress.is_empty() {
        let egress = || {
            is(
                meta(MetaKey::Skuid),
                set_of(uids.egress.iter().map(|&uid| number(uid)).collect()),
            )
        };
        for (address, set) in [
            (payload("ip", "daddr"), SET_ALLOW4),
            (payload("ip6", "daddr"), SET_ALLOW6),
        ] {
            rules.push(plain(vec![
                egress(),
                is(
                    concat(vec![address, payload("tcp", "dport")]),
                    named_set(set),
                ),
                accept(),
            ]));
        }
    }
    rules.push(counted_drop(COMMENT_OUTPUT_DROP));
    rules
}

fn plain(expr: Vec<Statement<'static>>) -> RuleSpec {
    (expr, None)
}

/// The last rule of a chain: the policy would drop anyway, the rule counts what it drops.
fn counted_drop(comment: &'static str) -> RuleSpec {
    (vec![counter(), drop()], Some(comment))
}

fn established_or_related() -> Statement<'static> {
    has_any(ct_state(), vec![word("established"), word("related")])
}

fn add(object: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(object))
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: Cow::Borrowed(TABLE),
        handle: None,
    }
}

fn set(name: &'static str, types: Vec<SetType>) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name),
        handle: None,
        set_type: SetTypeValue::Concatenated(Cow::Owned(types)),
        policy: None,
        // One flag: the crate keeps flags in a HashSet, whose order would make the bytes vary.
        flags: Some(HashSet::from([SetFlag::Timeout])),
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

fn base_chain(name: &'static str, hook: NfHook) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name),
        newname: None,
        handle: None,
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(PRIORITY_FILTER),
        dev: None,
        policy: Some(NfChainPolicy::Drop),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn document(egress: Vec<u32>) -> Value {
        serde_json::to_value(base_ruleset(&FirewallUids { netd: 1002, egress })).unwrap()
    }

    fn added<'v>(doc: &'v Value, kind: &str) -> Vec<&'v Value> {
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|command| command.get("add")?.get(kind))
            .collect()
    }

    /// The statements of each rule of a chain, as JSON text, in order.
    fn rules(doc: &Value, chain: &str) -> Vec<String> {
        added(doc, "rule")
            .into_iter()
            .filter(|rule| rule["chain"] == chain)
            .map(|rule| rule["expr"].to_string())
            .collect()
    }

    #[test]
    fn every_chain_drops_by_policy_and_counts_its_drops_last() {
        let doc = document(vec![1000]);
        let chains = added(&doc, "chain");
        assert_eq!(chains.len(), 3);
        for chain in chains {
            assert_eq!(chain["policy"], "drop", "{chain}");
            assert_eq!(chain["type"], "filter");
            assert_eq!(chain["prio"], 0);
            let name = chain["name"].as_str().unwrap();
            let last = added(&doc, "rule")
                .into_iter()
                .rfind(|rule| rule["chain"] == name)
                .unwrap();
            assert_eq!(last["comment"], format!("{name} drop"));
            assert_eq!(
                last["expr"],
                json!([{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}])
            );
        }
    }

    #[test]
    fn the_sets_have_concatenated_types_and_timeouts() {
        let doc = document(vec![1000]);
        let sets: Vec<(String, String)> = added(&doc, "set")
            .into_iter()
            .map(|set| {
                assert_eq!(set["flags"], json!(["timeout"]));
                (
                    set["name"].as_str().unwrap().into(),
                    set["type"].to_string(),
                )
            })
            .collect();
        let expected = [
            ("allow4", r#"["ipv4_addr","inet_service"]"#),
            ("allow6", r#"["ipv6_addr","inet_service"]"#),
            ("netd4", r#"["ipv4_addr","inet_proto","inet_service"]"#),
            ("netd6", r#"["ipv6_addr","inet_proto","inet_service"]"#),
        ];
        assert_eq!(sets, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn nothing_reaches_a_port_of_the_box_but_dhcp_replies() {
        let doc = document(vec![1000]);
        let input = rules(&doc, "input");
        let accepting: Vec<&String> = input.iter().filter(|r| r.contains("accept")).collect();
        for rule in &accepting {
            assert!(!rule.contains("echo-request"), "{rule}");
            assert!(!rule.contains("\"tcp\""), "{rule}");
            if rule.contains("dport") {
                // Rules are listed with sorted keys: payload, then op, then right.
                let port = |field: &str, port: u32| {
                    rule.contains(&format!(
                        r#""field":"{field}","protocol":"udp"}}}},"op":"==","right":{port}}}"#
                    ))
                };
                let dhcp4 = port("sport", 67) && port("dport", 68);
                let dhcp6 = port("sport", 547) && port("dport", 546);
                assert!(dhcp4 || dhcp6, "accepts a port: {rule}");
            }
        }
        assert_eq!(accepting.len(), 7, "{input:#?}");
        assert!(input[0].contains(r#""key":"iif""#) && input[0].contains("\"lo\""));
        assert!(input[1].contains(r#""op":"in""#) && input[1].contains("established"));
        assert!(input[2].contains("invalid") && input[2].contains("drop"));
        assert!(input[7].contains("nd-router-advert") && input[7].contains("255"));
    }

    #[test]
    fn only_the_egress_uids_reach_the_allow_sets_and_only_netd_its_own() {
        let doc = document(vec![1000, 1003]);
        let output = rules(&doc, "output");
        let allow: Vec<&String> = output.iter().filter(|r| r.contains("@allow")).collect();
        assert_eq!(allow.len(), 2);
        for rule in allow {
            assert!(
                rule.contains(r#"{"meta":{"key":"skuid"}},"op":"==","right":{"set":[1000,1003]}"#),
                "{rule}"
            );
            assert!(
                rule.contains(r#"{"field":"dport","protocol":"tcp"}"#),
                "{rule}"
            );
        }
        let netd: Vec<&String> = output.iter().filter(|r| r.contains("1002")).collect();
        assert_eq!(netd.len(), 4);
        assert!(
            netd.iter()
                .any(|r| r.contains("@netd4") && r.contains("l4proto"))
        );
        assert!(
            netd.iter()
                .any(|r| r.contains("@netd6") && r.contains("ip6"))
        );
        assert!(
            output
                .iter()
                .all(|r| !r.contains("skuid") || r.contains("1002") || r.contains("1000"))
        );

        let no_egress = rules(&document(vec![]), "output");
        assert_eq!(no_egress.len(), output.len() - 2);
        assert!(no_egress.iter().all(|r| !r.contains("@allow")));
    }

    #[test]
    fn loading_replaces_the_table_in_one_transaction() {
        let doc = document(vec![1000]);
        let first: Vec<String> = doc["nftables"].as_array().unwrap()[..3]
            .iter()
            .map(Value::to_string)
            .collect();
        let table = r#"{"table":{"family":"inet","name":"carapace"}}"#;
        assert_eq!(
            first,
            [
                format!(r#"{{"add":{table}}}"#),
                format!(r#"{{"delete":{table}}}"#),
                format!(r#"{{"add":{table}}}"#)
            ]
        );
        let bytes = || {
            serde_json::to_string(&base_ruleset(&FirewallUids {
                netd: 1002,
                egress: vec![1000],
            }))
            .unwrap()
        };
        assert_eq!(bytes(), bytes(), "the same uids give the same bytes");
    }
}
