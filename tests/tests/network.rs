//! The lockdown in QEMU: the test image boots on a private network (common/net.rs) and
//! netd must get its lease and its time there, the DNS stub and the firewall must let
//! agentd's uid reach an allowlisted name over HTTPS and nothing else, a scan from the LAN
//! must find no open port, and killing netd must leave the firewall in force.

mod common;
#[path = "common/net.rs"]
mod net;

use std::time::Duration;

use common::{boot_to_ready, fail, line_with, machine, power_off};
use net::{ALLOWED_NAME, BLOCKED_NAME, HOST, HOST_BY_IP, NTP_OFFSET_SECS, TestNet};

/// What a connect() gets when the firewall's output chain drops the SYN: the kernel retries
/// the SYN until the caller's timeout.
const DROPPED: &str = "blocked TimedOut: connection timed out";
/// What a UDP send gets when the output chain drops the datagram.
const DROPPED_UDP: &str = "blocked PermissionDenied: Operation not permitted (os error 1)";

/// On a failed assertion, the test hosts' logs (dnsmasq's queries and leases) go with it.
struct HostLogsOnPanic<'a>(&'a TestNet);

impl Drop for HostLogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dnsmasq ---\n{}", self.0.log("dnsmasq"));
        }
    }
}

#[test]
fn lockdown_on_a_private_network() {
    let net = TestNet::new("lockdown");
    let _logs = HostLogsOnPanic(&net);
    let (_dir, mut config) = machine("lockdown");
    config.network = net.network();
    config
        .fw_cfg
        .push(("carapace.test".into(), "netcheck".into()));
    config
        .fw_cfg
        .push(("carapace.test-ca".into(), net.ca_pem.clone()));
    let mut vm = boot_to_ready(&config);

    // netd: the base policy was in force before any link came up, then a lease and the time.
    let lease = line_with(&mut vm, "netd: dhcp eth0: lease 198.18.0.");
    assert!(
        lease.contains(&format!("from {HOST} gateway={HOST} dns={HOST} ntp={HOST}")),
        "{lease}"
    );
    let address = lease
        .split_whitespace()
        .nth(4)
        .and_then(|a| a.split('/').next())
        .expect("lease address")
        .to_owned();
    let stepped = line_with(&mut vm, "netd: time: clock stepped +");
    let offset: f64 = stepped
        .trim_start_matches("netd: time: clock stepped +")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(&vm, format!("no offset in '{stepped}'")));
    assert!(
        (offset - NTP_OFFSET_SECS as f64).abs() < 120.0,
        "the clock moved by {offset} s, not about {NTP_OFFSET_SECS} s: {stepped}"
    );

    // agentd's uid: the allowlisted name works over HTTPS, nothing else does.
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck https "),
        format!("netcheck: netcheck https {ALLOWED_NAME}: HTTP/1.0 200 ok")
    );
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck by-ip before lookup "),
        format!("netcheck: netcheck by-ip before lookup {HOST}:443: {DROPPED}")
    );
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck by-ip 198"),
        format!("netcheck: netcheck by-ip {HOST_BY_IP}:443: {DROPPED}")
    );
    assert_eq!(
        line_with(&mut vm, &format!("netcheck: netcheck dns {BLOCKED_NAME}")),
        format!("netcheck: netcheck dns {BLOCKED_NAME}: rcode=Query Refused answers=0")
    );
    assert_eq!(
        line_with(&mut vm, &format!("netcheck: netcheck dns {ALLOWED_NAME}")),
        format!("netcheck: netcheck dns {ALLOWED_NAME}: rcode=No Error answers=1")
    );
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck direct-dns "),
        format!("netcheck: netcheck direct-dns {HOST}:53: {DROPPED_UDP}")
    );
    // Another uid resolves the same name (so its address is in the allow set) and is dropped.
    assert_eq!(
        line_with(&mut vm, "netcheck-other: netcheck-other https "),
        format!("netcheck-other: netcheck-other https {ALLOWED_NAME}: {DROPPED}")
    );

    // Killing netd leaves the policy in force, and PID 1 brings netd back.
    line_with(&mut vm, "netcheck: netcheck killed netd pid=");
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck by-ip while netd is down: "),
        format!("netcheck: netcheck by-ip while netd is down: {DROPPED}")
    );
    match vm.wait_for(
        "netcheck: netcheck netd back pid=",
        0,
        Duration::from_secs(90),
    ) {
        Ok(_) => {}
        Err(e) => fail(&vm, e),
    }
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck by-ip after restart: "),
        format!("netcheck: netcheck by-ip after restart: {DROPPED}")
    );
    assert_eq!(
        line_with(&mut vm, "netcheck: netcheck https after restart: "),
        format!("netcheck: netcheck https after restart: HTTP/1.0 200 ok")
    );

    // A host allowed over netd's control socket and taken back (as agentd does for a skill it
    // removes): refused again, and the address it shares with allowed.test closed at once, until
    // allowed.test is looked up again.
    let checks = [
        ("by-ip before disallow".to_string(), "connected"),
        (format!("allow {BLOCKED_NAME}"), "{\"ok\":true}"),
        (
            format!("dns {BLOCKED_NAME} once allowed"),
            "rcode=No Error answers=1",
        ),
        (format!("disallow {BLOCKED_NAME}"), "{\"ok\":true}"),
        (
            format!("dns {BLOCKED_NAME} once disallowed"),
            "rcode=Query Refused answers=0",
        ),
        ("by-ip after disallow".to_string(), DROPPED),
        ("https after disallow".to_string(), "HTTP/1.0 200 ok"),
    ];
    for (check, expected) in checks {
        let start = format!("netcheck: netcheck {check}: ");
        assert_eq!(line_with(&mut vm, &start), format!("{start}{expected}"));
    }
    let console = vm.console();
    for said in [
        format!("netd: config: the owner allowed {BLOCKED_NAME} port 443"),
        format!("netd: config: the owner took back {BLOCKED_NAME} port 443"),
        "netd: firewall: closed what the allow sets held".to_string(),
    ] {
        if !console.iter().any(|line| line.starts_with(&said)) {
            fail(&vm, format!("{said:?} not on the console"));
        }
    }

    // From the LAN: no TCP port and no UDP port answers (every probe dropped: an open port
    // would answer, a closed one would be refused; both would leave the "not shown" count).
    let tcp = net.output(
        "nmap",
        &[
            "-n",
            "-Pn",
            "-sS",
            "-p-",
            "-T4",
            "--min-rate",
            "3000",
            "--max-retries",
            "1",
            &address,
        ],
    );
    assert!(
        tcp.contains("Not shown: 65535 filtered tcp ports (no-response)"),
        "{tcp}"
    );
    let udp = net.output(
        "nmap",
        &[
            "-n",
            "-Pn",
            "-sU",
            "--top-ports",
            "200",
            "-T4",
            "--min-rate",
            "1000",
            &address,
        ],
    );
    assert!(
        udp.contains("Not shown: 200 open|filtered udp ports (no-response)"),
        "{udp}"
    );
    power_off(&mut vm);
}
