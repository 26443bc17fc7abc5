//! A two-namespace network for the firewall tests: `box` (198.18.0.2, 2001:db8::2) carries
//! the real base ruleset, loaded by the real nft; `world` (198.18.0.1, 2001:db8::1) is the
//! rest of the internet. Probes run as a chosen uid through setpriv. Everything is torn down
//! when the lab is dropped, also when a test fails.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use carapace_netpolicy::{
    FirewallStatus, FirewallUids, NFT_PROGRAM, Nftables, apply_with, base_ruleset,
};

pub const NETD_UID: u32 = 1002;
pub const EGRESS_UID: u32 = 1000;
/// A service uid with no network role.
pub const OTHER_UID: u32 = 1100;

pub const BOX4: &str = "198.18.0.2";
pub const WORLD4: &str = "198.18.0.1";
pub const BOX6: &str = "2001:db8::2";
pub const WORLD6: &str = "2001:db8::1";

static LABS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Box,
    World,
}

pub struct Lab {
    box_ns: String,
    world_ns: String,
    testhost: PathBuf,
    servers: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Two namespaces joined by a veth pair, the base ruleset loaded in `box`.
    pub fn new() -> Lab {
        require_root_and_tools();
        let id = format!(
            "{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        // The probe runs as unprivileged uids: give it a path they can read and execute.
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temporary directory");
        let testhost = dir.path().join("carapace-testhost");
        std::fs::copy(env!("CARGO_BIN_EXE_carapace-testhost"), &testhost)
            .expect("copy carapace-testhost");
        let lab = Lab {
            box_ns: format!("carapace-box-{id}"),
            world_ns: format!("carapace-world-{id}"),
            testhost,
            servers: Vec::new(),
            _dir: dir,
        };
        // Registered before they exist, so that a half-made lab is removed too.
        run(Command::new("ip").args(["netns", "add", &lab.box_ns]));
        run(Command::new("ip").args(["netns", "add", &lab.world_ns]));
        let (veth_box, veth_world) = (format!("cb{id}"), format!("cw{id}"));
        run(Command::new("ip").args([
            "link",
            "add",
            &veth_box,
            "netns",
            &lab.box_ns,
            "type",
            "veth",
            "peer",
            "name",
            &veth_world,
            "netns",
            &lab.world_ns,
        ]));
        for (side, veth, v4, v6) in [
            (Side::Box, &veth_box, BOX4, BOX6),
            (Side::World, &veth_world, WORLD4, WORLD6),
        ] {
            let ip = |args: &[&str]| run(lab.in_ns(side, "ip").args(args));
            ip(&["link", "set", "lo", "up"]);
            ip(&["addr", "add", &format!("{v4}/24"), "dev", veth]);
            ip(&["addr", "add", &format!("{v6}/64"), "dev", veth, "nodad"]);
            ip(&["link", "set", veth, "up"]);
        }
        lab.apply(&base_ruleset(&FirewallUids {
            netd: NETD_UID,
            egress: vec![EGRESS_UID],
        }));
        lab
    }

    /// `ip netns exec <ns> <program>`.
    fn in_ns(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let ns = match side {
            Side::Box => &self.box_ns,
            Side::World => &self.world_ns,
        };
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }

    /// Loads nftables commands into `box` with the real `nft -j -f -`.
    pub fn apply(&self, commands: &Nftables) {
        let mut command = self.in_ns(Side::Box, NFT_PROGRAM);
        command.args(["-j", "-f", "-"]);
        if let Err(err) = apply_with(command, commands) {
            panic!("{err}");
        }
    }

    /// The firewall's counters and set sizes, through netpolicy's own reader.
    pub fn status(&self) -> FirewallStatus {
        let listing = run(self
            .in_ns(Side::Box, NFT_PROGRAM)
            .args(["-j", "list", "table", "inet", "carapace"]));
        carapace_netpolicy::status(&listing).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Echo servers on `specs` ("tcp:198.18.0.1:443"), as root, until the lab is dropped.
    pub fn serve(&mut self, side: Side, specs: &[String]) {
        let mut child = self
            .in_ns(side, &self.testhost)
            .arg("serve")
            .args(specs)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start carapace-testhost serve");
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        self.servers.push(child);
        assert_eq!(line, "ready\n", "echo servers {specs:?} did not start");
    }

    /// Runs a probe (`tcp` or `udp`) in `side` as `uid` (None: root) and returns its line.
    pub fn probe(&self, side: Side, uid: Option<u32>, proto: &str, to: SocketAddr) -> String {
        let mut command = match uid {
            Some(uid) => {
                let mut command = self.in_ns(side, "setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(&self.testhost);
                command
            }
            None => self.in_ns(side, &self.testhost),
        };
        command.arg(proto).arg(to.to_string());
        run(&mut command).trim_end().to_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        for ns in [&self.box_ns, &self.world_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn at(address: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(address), port)
}

pub fn ip(address: &str) -> IpAddr {
    address.parse().expect("a test address")
}

/// Runs a command to completion and returns its standard output; any failure fails the test
/// with the command and its stderr.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A check that cannot run is a failed check, never a skipped one.
fn require_root_and_tools() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the firewall tests make network namespaces and load nftables: run them as root, as CI does"
    );
    assert!(
        Path::new(NFT_PROGRAM).exists(),
        "{NFT_PROGRAM} is missing: run `make deps` (Debian package nftables)"
    );
    for (tool, package) in [("ip", "iproute2"), ("setpriv", "util-linux")] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "{tool} is missing: run `make deps` (Debian package {package})"
        );
    }
}
