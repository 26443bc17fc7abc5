//! A private network for one test: a network namespace holding a tap device for the guest and
//! the test's hosts on 198.18.0.1 (a range set aside for benchmarks, never routed): dnsmasq for
//! DHCP and DNS, an SNTP server that says the time is a day later than it is, and an HTTPS
//! server (openssl s_server) for allowed.test with a certificate from a throw-away CA. Nothing
//! in the namespace reaches the host's network. Dropping it stops the hosts and removes it.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carapace_image::qemu::Network;

pub const HOST: &str = "198.18.0.1";
/// A second address of the same hosts, which no DNS answer names.
pub const HOST_BY_IP: &str = "198.18.0.2";
pub const ALLOWED_NAME: &str = "allowed.test";
/// The real names of the services the default image talks to, answered by the test's DNS with
/// addresses of its own hosts, where the fakes listen (certificates from the test CA).
pub const TELEGRAM_NAME: &str = "api.telegram.org";
pub const TELEGRAM_HOST: &str = "198.18.0.3";
pub const LLM_NAME: &str = "api.openai.com";
pub const LLM_HOST: &str = "198.18.0.4";
pub const BLOCKED_NAME: &str = "blocked.test";
/// The update repository a test publishes to (tests/fakes' update server listens there).
pub const UPDATE_NAME: &str = "updates.carapace.test";
pub const UPDATE_HOST: &str = "198.18.0.5";
/// GitHub's API and file host, for skills the owner installs from a folder link: one fake.
pub const GITHUB_API_NAME: &str = "api.github.com";
pub const GITHUB_RAW_NAME: &str = "raw.githubusercontent.com";
pub const GITHUB_HOST: &str = "198.18.0.6";
/// What the SNTP server adds to the host's clock, so a synced guest is plain to see.
pub const NTP_OFFSET_SECS: u64 = 86_400;
const TAP: &str = "tap0";
/// 1900 to 1970, for NTP timestamps.
const NTP_EPOCH_OFFSET: u64 = 2_208_988_800;

pub struct TestNet {
    pub netns: String,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    hosts: Vec<Child>,
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| {
            panic!("run {args:?}: {e} (make deps installs iproute2, dnsmasq-base, openssl)")
        });
    assert!(status.success(), "{args:?}: {status}");
}

impl TestNet {
    pub fn new(name: &str) -> TestNet {
        let netns = format!("cp-{name}-{}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = Command::new("ip").args(["netns", "del", &netns]).status();
        run(&["ip", "netns", "add", &netns]);
        let mut net = TestNet {
            netns: netns.clone(),
            dir,
            ca_pem: String::new(),
            hosts: Vec::new(),
        };
        let in_netns = |args: &str| {
            let mut words = vec!["ip", "-n", &netns];
            words.extend(args.split_whitespace());
            run(&words);
        };
        in_netns("link set lo up");
        in_netns(&format!("tuntap add dev {TAP} mode tap"));
        in_netns(&format!("addr add {HOST}/24 dev {TAP}"));
        in_netns(&format!("addr add {HOST_BY_IP}/24 dev {TAP}"));
        in_netns(&format!("addr add {TELEGRAM_HOST}/24 dev {TAP}"));
        in_netns(&format!("addr add {LLM_HOST}/24 dev {TAP}"));
        in_netns(&format!("addr add {UPDATE_HOST}/24 dev {TAP}"));
        in_netns(&format!("addr add {GITHUB_HOST}/24 dev {TAP}"));
        in_netns(&format!("link set {TAP} up"));
        net.start_dnsmasq();
        net.make_certificates();
        net.start_https();
        net.start_sntp();
        net
    }

    pub fn network(&self) -> Network {
        Network::Tap {
            netns: self.netns.clone(),
            ifname: TAP.to_owned(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn in_netns(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns, program]);
        command
    }

    fn spawn(&mut self, mut command: Command, what: &str) {
        let log = std::fs::File::create(self.path(&format!("{what}.log"))).expect("log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}; make deps installs it"));
        self.hosts.push(child);
    }

    fn start_dnsmasq(&mut self) {
        let mut command = self.in_netns("dnsmasq");
        command.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--user=root",
            "--group=root",
            &format!("--interface={TAP}"),
            "--bind-dynamic",
            "--no-resolv",
            "--no-hosts",
            "--log-facility=-",
            "--log-dhcp",
            "--log-queries",
            &format!("--dhcp-leasefile={}", self.path("leases").display()),
            "--dhcp-range=198.18.0.10,198.18.0.50,255.255.255.0,1h",
            &format!("--dhcp-option=option:router,{HOST}"),
            &format!("--dhcp-option=option:dns-server,{HOST}"),
            &format!("--dhcp-option=option:ntp-server,{HOST}"),
            &format!("--address=/{ALLOWED_NAME}/{HOST}"),
            &format!("--address=/{BLOCKED_NAME}/{HOST}"),
            &format!("--address=/{TELEGRAM_NAME}/{TELEGRAM_HOST}"),
            &format!("--address=/{LLM_NAME}/{LLM_HOST}"),
            &format!("--address=/{UPDATE_NAME}/{UPDATE_HOST}"),
            &format!("--address=/{GITHUB_API_NAME}/{GITHUB_HOST}"),
            &format!("--address=/{GITHUB_RAW_NAME}/{GITHUB_HOST}"),
        ]);
        self.spawn(command, "dnsmasq");
    }

    fn make_certificates(&mut self) {
        let ca = carapace_fakes::test_ca::make(
            self.dir.path(),
            &[
                ALLOWED_NAME,
                TELEGRAM_NAME,
                LLM_NAME,
                UPDATE_NAME,
                GITHUB_API_NAME,
                GITHUB_RAW_NAME,
            ],
        );
        self.ca_pem = ca.ca_pem;
    }

    fn start_https(&mut self) {
        let mut command = self.in_netns("openssl");
        command
            .args(["s_server", "-accept"])
            .arg(format!("{HOST}:443"))
            .args(["-www", "-cert"]);
        command
            .arg(self.path("server.pem"))
            .arg("-key")
            .arg(self.path("server.key"));
        self.spawn(command, "https");
    }

    /// An SNTP server on HOST:123 in the namespace: a thread that moves itself into the
    /// namespace (setns affects only the calling thread), binds there and answers forever.
    fn start_sntp(&mut self) {
        let netns = std::fs::File::open(format!("/run/netns/{}", self.netns)).expect("netns");
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let moved = rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&netns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            );
            let socket = moved
                .map_err(|e| e.to_string())
                .and_then(|()| UdpSocket::bind((HOST, 123)).map_err(|e| e.to_string()));
            let socket = match socket {
                Ok(socket) => {
                    let _ = bound_tx.send(Ok(()));
                    socket
                }
                Err(err) => {
                    let _ = bound_tx.send(Err(err));
                    return;
                }
            };
            let mut request = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut request) {
                if len >= 48 {
                    let _ = socket.send_to(&sntp_reply(&request[..48]), from);
                }
            }
        });
        bound_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the SNTP thread answered")
            .expect("the SNTP server bound");
    }

    /// The server certificate (for every name above) and its key, PEM.
    pub fn server_cert(&self) -> (PathBuf, PathBuf) {
        (self.path("server.pem"), self.path("server.key"))
    }

    /// A TCP listener on `address` inside the namespace (made by a thread that moved itself
    /// there; the socket stays in the namespace), for a fake to serve on.
    pub fn listen_tcp(&self, address: std::net::SocketAddr) -> std::net::TcpListener {
        let netns = std::fs::File::open(format!("/run/netns/{}", self.netns)).expect("netns");
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&netns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| e.to_string())
            .and_then(|()| std::net::TcpListener::bind(address).map_err(|e| e.to_string()))
        })
        .join()
        .expect("the listening thread")
        .unwrap_or_else(|e| panic!("listen on {address} in the test network: {e}"))
    }

    /// The lines a host wrote to its log (dnsmasq's queries and leases, for failures).
    pub fn log(&self, what: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{what}.log"))).unwrap_or_default()
    }

    /// Runs `program args` in the namespace and returns its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        let output = self
            .in_netns(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}; make deps installs it"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A server reply to an SNTP request: the host's time plus [`NTP_OFFSET_SECS`].
fn sntp_reply(request: &[u8]) -> [u8; 48] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        + Duration::from_secs(NTP_OFFSET_SECS);
    let seconds = (now.as_secs() + NTP_EPOCH_OFFSET) as u32;
    let fraction = ((u64::from(now.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut stamp = [0u8; 8];
    stamp[..4].copy_from_slice(&seconds.to_be_bytes());
    stamp[4..].copy_from_slice(&fraction.to_be_bytes());
    let version = (request[0] >> 3) & 0x7;
    let mut reply = [0u8; 48];
    reply[0] = (version << 3) | 4; // no leap warning, the client's version, mode 4 (server)
    reply[1] = 1; // stratum 1: a reference clock
    reply[2] = request[2];
    reply[3] = 0xec; // precision 2^-20 s
    reply[12..16].copy_from_slice(b"TEST");
    reply[16..24].copy_from_slice(&stamp); // reference
    reply[24..32].copy_from_slice(&request[40..48]); // originate = the client's transmit
    reply[32..40].copy_from_slice(&stamp); // receive
    reply[40..48].copy_from_slice(&stamp); // transmit
    reply
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            let _ = host.kill();
            let _ = host.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}
