//! The base ruleset, loaded by the real nft into a network namespace, against real sockets:
//! the box reaches only what is in its sets, only as the uids allowed to, and nothing
//! reaches the box. Needs root, nft, ip and setpriv (`make deps`); no QEMU.
//!
//! How a block shows: a datagram the output chain drops fails at send() with EPERM; a TCP
//! SYN it drops does not (the kernel keeps retransmitting), so a blocked connect times out,
//! and the output drop counter proves it was the firewall.

mod firewall_lab;

use std::thread::sleep;
use std::time::Duration;

use carapace_netpolicy::{ElementOp, L4Proto, allow_elements, flush_allow_sets, netd_elements};
use firewall_lab::{
    BOX4, BOX6, EGRESS_UID, Lab, NETD_UID, OTHER_UID, Side, WORLD4, WORLD6, at, ip,
};

/// What the world serves: HTTPS and another TCP port, DNS over UDP and TCP, NTP.
fn serve_world(lab: &mut Lab) {
    let mut specs = Vec::new();
    for address in [WORLD4, WORLD6] {
        for (proto, port) in [
            ("tcp", 443),
            ("tcp", 8443),
            ("tcp", 53),
            ("udp", 53),
            ("udp", 123),
        ] {
            specs.push(format!("{proto}:{}", at(address, port)));
        }
    }
    lab.serve(Side::World, &specs);
}

/// A TCP probe from the box that the output chain dropped: it timed out, and the output
/// drop counter went up meanwhile.
fn assert_tcp_dropped(lab: &Lab, uid: u32, address: &str, port: u16) {
    let before = lab.status().output_drop.packets;
    let line = lab.probe(Side::Box, Some(uid), "tcp", at(address, port));
    assert!(
        line.starts_with("error TimedOut"),
        "uid {uid} to tcp {address} port {port}: {line}"
    );
    let after = lab.status().output_drop.packets;
    assert!(after > before, "the output drop counter stayed at {before}");
}

fn assert_udp_dropped(lab: &Lab, uid: u32, address: &str, port: u16) {
    let line = lab.probe(Side::Box, Some(uid), "udp", at(address, port));
    assert!(
        line.starts_with("error PermissionDenied") && line.contains("Operation not permitted"),
        "uid {uid} to udp {address} port {port}: {line}"
    );
}

fn assert_ok(lab: &Lab, uid: u32, proto: &str, address: &str, port: u16) {
    let line = lab.probe(Side::Box, Some(uid), proto, at(address, port));
    assert_eq!(line, "ok", "uid {uid} to {proto} {address} port {port}");
}

#[test]
fn egress_reaches_an_allowed_address_on_its_port_only() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    for (world, set) in [(WORLD4, "allow4"), (WORLD6, "allow6")] {
        assert_tcp_dropped(&lab, EGRESS_UID, world, 443);
        lab.apply(&allow_elements(&[(ip(world), 443)], 60));
        assert_eq!(lab.status().set_elements[set], 1);
        // "ok" means the echo came back: return traffic of the connection passes.
        assert_ok(&lab, EGRESS_UID, "tcp", world, 443);
        assert_tcp_dropped(&lab, EGRESS_UID, world, 8443);
        assert_udp_dropped(&lab, EGRESS_UID, world, 53);
    }
}

#[test]
fn uids_without_the_egress_role_do_not_reach_the_allow_sets() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    lab.apply(&allow_elements(&[(ip(WORLD4), 443), (ip(WORLD6), 443)], 60));
    assert_ok(&lab, EGRESS_UID, "tcp", WORLD4, 443);
    for uid in [OTHER_UID, NETD_UID] {
        assert_tcp_dropped(&lab, uid, WORLD4, 443);
        assert_tcp_dropped(&lab, uid, WORLD6, 443);
    }
}

#[test]
fn netd_reaches_the_resolvers_and_time_servers_it_added_and_no_one_else_does() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    assert_udp_dropped(&lab, NETD_UID, WORLD4, 53);
    assert_tcp_dropped(&lab, NETD_UID, WORLD4, 53);
    let peers = [
        (ip(WORLD4), L4Proto::Udp, 53),
        (ip(WORLD4), L4Proto::Tcp, 53),
        (ip(WORLD6), L4Proto::Udp, 123),
    ];
    lab.apply(&netd_elements(ElementOp::Add, &peers, 600));
    assert_ok(&lab, NETD_UID, "udp", WORLD4, 53);
    assert_ok(&lab, NETD_UID, "tcp", WORLD4, 53);
    assert_ok(&lab, NETD_UID, "udp", WORLD6, 123);
    // Only what was added: not another port, not another protocol, not another uid.
    assert_udp_dropped(&lab, NETD_UID, WORLD6, 53);
    assert_udp_dropped(&lab, NETD_UID, WORLD4, 123);
    assert_udp_dropped(&lab, EGRESS_UID, WORLD4, 53);
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD4, 53);

    lab.apply(&netd_elements(ElementOp::Delete, &peers[..1], 0));
    // Deleting what is already gone (expired, or deleted before a crash) is not an error.
    lab.apply(&netd_elements(ElementOp::Delete, &peers[..1], 0));
    assert_udp_dropped(&lab, NETD_UID, WORLD4, 53);
    assert_ok(&lab, NETD_UID, "tcp", WORLD4, 53);
}

#[test]
fn an_allow_element_expires_after_its_timeout() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    lab.apply(&allow_elements(&[(ip(WORLD4), 443)], 1));
    assert_ok(&lab, EGRESS_UID, "tcp", WORLD4, 443);
    sleep(Duration::from_millis(2500));
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD4, 443);
    assert_eq!(lab.status().set_elements["allow4"], 0);
}

/// What netd does when an entry leaves the allowlist: both allow sets emptied at once, whatever
/// their elements' timeouts, and netd's own sets untouched.
#[test]
fn flushing_the_allow_sets_closes_what_they_opened_and_nothing_of_netds() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    // Closed before (as in the tests above, this also lets the lab's IPv6 path settle: a
    // connection the moment after the lab came up could time out without any rule's doing).
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD4, 443);
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD6, 443);
    lab.apply(&allow_elements(
        &[(ip(WORLD4), 443), (ip(WORLD6), 443)],
        3600,
    ));
    lab.apply(&netd_elements(
        ElementOp::Add,
        &[(ip(WORLD4), L4Proto::Tcp, 53)],
        3600,
    ));
    assert_ok(&lab, EGRESS_UID, "tcp", WORLD4, 443);
    assert_ok(&lab, EGRESS_UID, "tcp", WORLD6, 443);
    lab.apply(&flush_allow_sets());
    assert_eq!(lab.status().set_elements["allow4"], 0);
    assert_eq!(lab.status().set_elements["allow6"], 0);
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD4, 443);
    assert_tcp_dropped(&lab, EGRESS_UID, WORLD6, 443);
    assert_ok(&lab, NETD_UID, "tcp", WORLD4, 53);
}

#[test]
fn adding_an_element_again_renews_its_timeout() {
    let mut lab = Lab::new();
    serve_world(&mut lab);
    lab.apply(&allow_elements(&[(ip(WORLD4), 443)], 3));
    sleep(Duration::from_millis(2000));
    // A name resolved again just before its element expires: the element must live on.
    lab.apply(&allow_elements(&[(ip(WORLD4), 443)], 3));
    sleep(Duration::from_millis(2000));
    assert_ok(&lab, EGRESS_UID, "tcp", WORLD4, 443);
    assert_eq!(lab.status().set_elements["allow4"], 1);
}

#[test]
fn nothing_reaches_the_box() {
    let mut lab = Lab::new();
    let mut specs = Vec::new();
    for address in [BOX4, BOX6] {
        for port in [22, 443] {
            specs.push(format!("tcp:{}", at(address, port)));
        }
        specs.push(format!("udp:{}", at(address, 5353)));
    }
    lab.serve(Side::Box, &specs);
    // The servers answer inside the box (loopback is open), so silence from outside is the
    // firewall's doing.
    for address in [BOX4, BOX6] {
        assert_eq!(lab.probe(Side::Box, None, "tcp", at(address, 22)), "ok");
        assert_eq!(lab.probe(Side::Box, None, "udp", at(address, 5353)), "ok");
    }
    for address in [BOX4, BOX6] {
        for port in [22, 443] {
            let before = lab.status().input_drop.packets;
            let line = lab.probe(Side::World, None, "tcp", at(address, port));
            // Dropped, not rejected: a reject would fail fast with "connection refused".
            assert!(
                line.starts_with("error TimedOut"),
                "tcp {address} port {port}: {line}"
            );
            assert!(
                lab.status().input_drop.packets > before,
                "tcp {address} port {port}"
            );
        }
        let line = lab.probe(Side::World, None, "udp", at(address, 5353));
        assert!(
            line.starts_with("error WouldBlock") || line.starts_with("error TimedOut"),
            "udp {address}: {line}"
        );
    }
}
