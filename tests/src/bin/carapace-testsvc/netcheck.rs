//! `netcheck` (as agentd's uid) and `netcheck-other` (as a uid without egress): what the
//! firewall and the DNS stub let a process on the box reach, printed one line per check, when
//! the test asks for it (`netcheck`). The test serves allowed.test over HTTPS from 198.18.0.1
//! and passes its CA certificate in through fw_cfg (`carapace.test-ca`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use crate::test_request;

const HOST: &str = "198.18.0.1";
/// The same test server's second address, which no DNS answer ever names.
const HOST_BY_IP: &str = "198.18.0.2:443";
const ALLOWED: &str = "allowed.test";
const BLOCKED: &str = "blocked.test";
const STATUS_SOCKET: &str = "/run/netd/status.sock";
const CONTROL_SOCKET: &str = "/run/netd/control.sock";
/// netcheck makes this once its check by IP before any lookup is done; netcheck-other waits
/// for it before it looks the name up (which opens the address for agentd's uid).
const BEFORE_LOOKUP_DONE: &str = "/tmp/netcheck-before-lookup-done";
const TIMEOUT: Duration = Duration::from_secs(10);
/// A SYN the output chain drops is retried by the kernel, not refused: connect() times out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a failed attempt is printed: the kind of error (TimedOut for a dropped TCP SYN,
/// PermissionDenied for a UDP datagram the output chain dropped), then the message.
fn blocked(err: &std::io::Error) -> String {
    format!("blocked {:?}: {err}", err.kind())
}

pub fn run(other_uid: bool) {
    if !test_request::asks_for("netcheck") {
        return;
    }
    let name = if other_uid {
        "netcheck-other"
    } else {
        "netcheck"
    };
    let Some(ca) = test_request::file("carapace.test-ca") else {
        println!("{name} no CA certificate in fw_cfg");
        return;
    };
    match wait_for_lease(Duration::from_secs(180)) {
        Some(address) => println!("{name} lease {address}"),
        None => {
            println!("{name} no lease within 180 s");
            return;
        }
    }
    if other_uid {
        let started = Instant::now();
        while !std::path::Path::new(BEFORE_LOOKUP_DONE).exists() {
            if started.elapsed() > Duration::from_secs(120) {
                println!("{name} netcheck did not finish its first check within 120 s");
                return;
            }
            sleep(Duration::from_millis(200));
        }
    } else {
        // Before any lookup: the server's address is in no allow set yet.
        let before = connect(&format!("{HOST}:443"));
        println!("{name} by-ip before lookup {HOST}:443: {before}");
        if let Err(err) = std::fs::write(BEFORE_LOOKUP_DONE, b"") {
            println!("{name} cannot write {BEFORE_LOOKUP_DONE}: {err}");
        }
    }
    let fetched = https_get(ALLOWED, &ca);
    println!("{name} https {ALLOWED}: {fetched}");
    if fetched.starts_with("resolve") {
        // Why the stub did not give an address: its counters.
        println!(
            "{name} stub counters {}",
            status().map(|s| s["dns"].to_string()).unwrap_or_default()
        );
    }
    if other_uid {
        return;
    }
    println!("{name} by-ip {HOST_BY_IP}: {}", connect(HOST_BY_IP));
    println!("{name} dns {BLOCKED}: {}", query_stub(BLOCKED));
    println!("{name} dns {ALLOWED}: {}", query_stub(ALLOWED));
    println!("{name} direct-dns {HOST}:53: {}", direct_dns());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    println!("{name} clock {}", now.as_secs());

    let Some(pid) = netd_pid() else {
        println!("{name} netd is not running");
        return;
    };
    let killed = rustix::process::Pid::from_raw(pid)
        .map(|p| rustix::process::kill_process(p, rustix::process::Signal::KILL));
    println!("{name} killed netd pid={pid} {killed:?}");
    println!("{name} by-ip while netd is down: {}", connect(HOST_BY_IP));
    let started = Instant::now();
    while netd_pid().is_none_or(|p| p == pid) || status().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            println!("{name} netd did not come back within 60 s");
            return;
        }
        sleep(Duration::from_millis(200));
    }
    println!("{name} netd back pid={}", netd_pid().unwrap_or(0));
    println!("{name} by-ip after restart: {}", connect(HOST_BY_IP));
    println!("{name} https after restart: {}", https_get(ALLOWED, &ca));

    // A host the owner's addition needed (as agentd asks for a skill's), then taken back: the
    // stub refuses it again and what the allow sets held is closed at once, until a name
    // still allowed is looked up again. blocked.test and allowed.test share the address.
    println!(
        "{name} by-ip before disallow: {}",
        connect(&format!("{HOST}:443"))
    );
    let op = |op: &str| format!("{{\"op\":\"{op}\",\"name\":\"{BLOCKED}\",\"port\":443}}");
    println!("{name} allow {BLOCKED}: {}", control(&op("allow")));
    println!("{name} dns {BLOCKED} once allowed: {}", query_stub(BLOCKED));
    println!("{name} disallow {BLOCKED}: {}", control(&op("disallow")));
    println!(
        "{name} dns {BLOCKED} once disallowed: {}",
        query_stub(BLOCKED)
    );
    println!(
        "{name} by-ip after disallow: {}",
        connect(&format!("{HOST}:443"))
    );
    println!("{name} https after disallow: {}", https_get(ALLOWED, &ca));
}

/// One request on netd's control socket (this uid is agentd's, one of netd's controllers);
/// netd's reply line, or what failed.
fn control(request: &str) -> String {
    let exchange = || -> std::io::Result<String> {
        let mut stream = std::os::unix::net::UnixStream::connect(CONTROL_SOCKET)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.write_all(format!("{request}\n").as_bytes())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply.trim().to_owned())
    };
    exchange().unwrap_or_else(|err| format!("error: {err}"))
}

fn status() -> Option<serde_json::Value> {
    let mut stream = std::os::unix::net::UnixStream::connect(STATUS_SOCKET).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The first DHCP lease netd reports on its status socket.
fn wait_for_lease(limit: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let lease = status().and_then(|s| {
            s["links"]
                .as_array()?
                .iter()
                .find_map(|l| l["lease"]["address"].as_str().map(str::to_owned))
        });
        if lease.is_some() {
            return lease;
        }
        sleep(Duration::from_millis(500));
    }
    None
}

fn netd_pid() -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "netd").then_some(pid)
        })
}

fn connect(address: &str) -> String {
    let Ok(address) = address.parse::<SocketAddr>() else {
        return format!("bad address {address}");
    };
    match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
        Ok(_) => "connected".to_owned(),
        Err(err) => blocked(&err),
    }
}

/// An HTTPS GET of `/` from `host`, resolved through the stub; the status line or the error.
fn https_get(host: &str, ca_pem: &str) -> String {
    try_https_get(host, ca_pem).unwrap_or_else(|err| err)
}

fn try_https_get(host: &str, ca_pem: &str) -> Result<String, String> {
    let address = (host, 443)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))?;
    let tcp = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|e| blocked(&e))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    roots.add(ca).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 1024];
    while !reply.contains(&b'\n') {
        match tls.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&reply);
    Ok(text
        .lines()
        .next()
        .unwrap_or("(empty reply)")
        .trim()
        .to_owned())
}

fn dns_query(name: &str, server: &str) -> Result<Message, String> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    let name = Name::from_ascii(format!("{name}.")).map_err(|e| e.to_string())?;
    message.add_query(Query::query(name, RecordType::A));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket.send_to(&bytes, server).map_err(|e| blocked(&e))?;
    let mut reply = [0u8; 4096];
    let len = socket.recv(&mut reply).map_err(|e| e.to_string())?;
    Message::from_vec(&reply[..len]).map_err(|e| e.to_string())
}

/// The stub's answer: its response code and the addresses it gave.
fn query_stub(name: &str) -> String {
    match dns_query(name, "127.0.0.53:53") {
        Ok(reply) => format!(
            "rcode={} answers={}",
            reply.metadata.response_code,
            reply.answers.len()
        ),
        Err(err) => format!("error: {err}"),
    }
}

/// A query that goes around the stub, straight to the LAN's resolver.
fn direct_dns() -> String {
    match dns_query(ALLOWED, &format!("{HOST}:53")) {
        Ok(reply) => format!("answered rcode={}", reply.metadata.response_code),
        Err(err) => err,
    }
}
