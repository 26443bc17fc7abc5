//! The set elements netd adds as it learns addresses: the DNS stub's answers go into the
//! allow sets, its resolvers and NTP servers into the netd sets. Every element carries a
//! timeout, so an address nobody re-resolves stops being reachable on its own.
//!
//! Adding an element that is already in a set does not renew its timeout (checked with the
//! kernel: the old expiry stays). So an add is written as add, delete, add of the same
//! elements in one nft transaction: the first add makes sure each element exists (so the
//! delete cannot fail), and the last one puts it back with a fresh timeout. A name resolved
//! again just before its element expired then stays reachable for the full new timeout.

use std::borrow::Cow;
use std::net::IpAddr;

use nftables::expr::{Elem, Expression};
use nftables::schema::{Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Set};
use nftables::types::NfFamily;

use crate::names::{SET_ALLOW4, SET_ALLOW6, SET_NETD4, SET_NETD6, TABLE};
use crate::ruleset_expr::{concat, number};

/// The shortest life of an allow element: a TTL of seconds would make the stub re-add the
/// address for every query and let connections opened a moment later fail.
pub const ALLOW_TIMEOUT_MIN_SECS: u32 = 60;
/// The longest: a day-long TTL must not keep an address open once the name has moved.
pub const ALLOW_TIMEOUT_MAX_SECS: u32 = 3600;

/// The element timeout for a DNS answer with this TTL.
pub fn allow_timeout(ttl_secs: u32) -> u32 {
    ttl_secs.clamp(ALLOW_TIMEOUT_MIN_SECS, ALLOW_TIMEOUT_MAX_SECS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementOp {
    Add,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    fn keyword(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// `add element inet carapace allow4 { a . port timeout Ns, ... }` (and allow6 for the IPv6
/// addresses). A timeout of 0 is taken as 1 s: in a timeout set 0 would mean "forever".
pub fn allow_elements(addrs: &[(IpAddr, u16)], timeout_secs: u32) -> Nftables<'static> {
    let values = addrs.iter().map(|&(address, port)| {
        (
            address,
            concat(vec![address_value(address), number(port.into())]),
        )
    });
    commands(ElementOp::Add, SET_ALLOW4, SET_ALLOW6, values, timeout_secs)
}

/// Empties the allow sets: every address the DNS stub opened is closed (netd does this when
/// an entry leaves the allowlist, and empties its DNS cache with it, so each name still
/// allowed opens again at its next lookup).
pub fn flush_allow_sets() -> Nftables<'static> {
    let flush = |set: &'static str| {
        NfObject::CmdObject(NfCmd::Flush(FlushObject::Set(Box::new(Set {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            name: Cow::Borrowed(set),
            ..Set::default()
        }))))
    };
    Nftables {
        objects: Cow::Owned(vec![flush(SET_ALLOW4), flush(SET_ALLOW6)]),
    }
}

/// Adds or deletes netd's own peers: `address . proto . port` in netd4/netd6. A delete
/// ignores the timeout, and succeeds whether or not the element is still there.
pub fn netd_elements(
    op: ElementOp,
    entries: &[(IpAddr, L4Proto, u16)],
    timeout_secs: u32,
) -> Nftables<'static> {
    let values = entries.iter().map(|&(address, proto, port)| {
        let proto = Expression::String(Cow::Borrowed(proto.keyword()));
        (
            address,
            concat(vec![address_value(address), proto, number(port.into())]),
        )
    });
    commands(op, SET_NETD4, SET_NETD6, values, timeout_secs)
}

fn with_timeout(value: Expression<'static>, timeout_secs: u32) -> Expression<'static> {
    Expression::Named(nftables::expr::NamedExpression::Elem(Elem {
        val: Box::new(value),
        timeout: Some(timeout_secs.max(1)),
        expires: None,
        comment: None,
        counter: None,
    }))
}

/// The bare value of an element written with its timeout (what a delete names).
fn value_of(element: &Expression<'static>) -> Expression<'static> {
    match element {
        Expression::Named(nftables::expr::NamedExpression::Elem(elem)) => (*elem.val).clone(),
        other => other.clone(),
    }
}

fn address_value(address: IpAddr) -> Expression<'static> {
    Expression::String(Cow::Owned(address.to_string()))
}

/// One command per set that gets elements; none for an empty list.
fn commands(
    op: ElementOp,
    set4: &'static str,
    set6: &'static str,
    values: impl Iterator<Item = (IpAddr, Expression<'static>)>,
    timeout_secs: u32,
) -> Nftables<'static> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (address, value) in values {
        let element = match op {
            ElementOp::Add => with_timeout(value, timeout_secs),
            ElementOp::Delete => value,
        };
        if address.is_ipv4() { &mut v4 } else { &mut v6 }.push(element);
    }
    let mut objects = Vec::new();
    for (set, elem) in [(set4, v4), (set6, v6)] {
        if elem.is_empty() {
            continue;
        }
        let element = |elem: Vec<Expression<'static>>| {
            NfListObject::Element(Element {
                family: NfFamily::INet,
                table: Cow::Borrowed(TABLE),
                name: Cow::Borrowed(set),
                elem: Cow::Owned(elem),
            })
        };
        match op {
            ElementOp::Add => {
                let values: Vec<Expression<'static>> = elem.iter().map(value_of).collect();
                objects.push(NfObject::CmdObject(NfCmd::Add(element(elem.clone()))));
                objects.push(NfObject::CmdObject(NfCmd::Delete(element(values))));
                objects.push(NfObject::CmdObject(NfCmd::Add(element(elem))));
            }
            // An element that already expired would fail the whole delete: add it first
            // (for a second at most, and the delete follows in the same transaction).
            ElementOp::Delete => {
                let present: Vec<Expression<'static>> = elem
                    .iter()
                    .cloned()
                    .map(|value| with_timeout(value, 1))
                    .collect();
                objects.push(NfObject::CmdObject(NfCmd::Add(element(present))));
                objects.push(NfObject::CmdObject(NfCmd::Delete(element(elem))));
            }
        }
    }
    Nftables {
        objects: Cow::Owned(objects),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn allow_elements_go_to_the_set_of_their_family_with_a_timeout() {
        let doc = allow_elements(&[(ip("192.0.2.1"), 443), (ip("2001:db8::1"), 8443)], 90);
        let doc = serde_json::to_value(doc).unwrap();
        let elem = |set: &str, value: serde_json::Value| {
            json!({"add": {"element": {"family": "inet", "table": "carapace", "name": set,
                "elem": [{"elem": {"val": {"concat": value}, "timeout": 90,
                    "expires": null, "comment": null, "counter": null}}]}}})
        };
        let bare = |set: &str, value: serde_json::Value| {
            json!({"delete": {"element": {"family": "inet", "table": "carapace", "name": set,
                "elem": [{"concat": value}]}}})
        };
        let v4 = json!(["192.0.2.1", 443]);
        let v6 = json!(["2001:db8::1", 8443]);
        // add, delete, add: the element exists afterwards with a fresh timeout.
        assert_eq!(
            doc,
            json!({"nftables": [
                elem("allow4", v4.clone()), bare("allow4", v4.clone()), elem("allow4", v4),
                elem("allow6", v6.clone()), bare("allow6", v6.clone()), elem("allow6", v6),
            ]})
        );
    }

    #[test]
    fn a_zero_timeout_never_makes_an_element_permanent() {
        let doc = serde_json::to_value(allow_elements(&[(ip("192.0.2.1"), 443)], 0)).unwrap();
        assert_eq!(
            doc["nftables"][0]["add"]["element"]["elem"][0]["elem"]["timeout"],
            1
        );
        let empty = serde_json::to_value(allow_elements(&[], 60)).unwrap();
        assert_eq!(empty, json!({"nftables": []}));
    }

    #[test]
    fn netd_elements_carry_the_protocol_and_deletes_name_just_the_value() {
        let entries = [
            (ip("192.0.2.53"), L4Proto::Udp, 53),
            (ip("192.0.2.53"), L4Proto::Tcp, 53),
            (ip("2001:db8::123"), L4Proto::Udp, 123),
        ];
        let add = serde_json::to_value(netd_elements(ElementOp::Add, &entries, 600)).unwrap();
        let netd4 = &add["nftables"][0]["add"]["element"];
        assert_eq!(netd4["name"], "netd4");
        assert_eq!(
            netd4["elem"][1]["elem"]["val"],
            json!({"concat": ["192.0.2.53", "tcp", 53]})
        );
        assert_eq!(netd4["elem"][1]["elem"]["timeout"], 600);
        assert_eq!(add["nftables"][3]["add"]["element"]["name"], "netd6");

        let delete = serde_json::to_value(netd_elements(ElementOp::Delete, &entries[..1], 600));
        assert_eq!(
            delete.unwrap()["nftables"][1]["delete"]["element"]["elem"],
            json!([{"concat": ["192.0.2.53", "udp", 53]}])
        );
    }

    #[test]
    fn ttls_are_clamped_to_a_minute_and_an_hour() {
        assert_eq!(allow_timeout(0), 60);
        assert_eq!(allow_timeout(300), 300);
        assert_eq!(allow_timeout(86_400), 3600);
    }
}
