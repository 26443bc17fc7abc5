//! `wifitrial`, when the test asks for it: runs as uid 1000, one of netd's `--controller`
//! uids, and drives netd's control socket as agentd would. It puts a network that is not in
//! the air on trial and never commits, so netd must leave the test access point, go back by
//! itself at the deadline and join the access point again; then it puts the access point on
//! trial and commits. One line per step, and whether a passphrase ever showed on the status
//! socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use board_support::netd_control::{Request, SOCKET_PATH};
use board_support::wifi::WifiNetwork;

use crate::test_request;

const STATUS_SOCKET: &str = "/run/netd/status.sock";
/// The test recipe's access point.
const SSID: &str = "carapace-test-ap";
const PASSPHRASE: &str = "test-passphrase-1234";
/// A network nobody runs.
const ELSEWHERE: &str = "carapace-elsewhere";
const ELSEWHERE_PASSPHRASE: &str = "elsewhere-passphrase";
/// Short, so the test waits little for netd to go back by itself.
const REVERT_AFTER_S: u64 = 20;
const LIMIT: Duration = Duration::from_secs(180);

pub fn run() {
    if !test_request::asks_for("wifitrial") {
        return;
    }
    let name = "wifitrial";
    let mut status = Status::default();
    if status.wait(|s| connected_ssid(s) == Some(SSID)).is_none() {
        println!(
            "{name} never connected to {SSID} within {} s",
            LIMIT.as_secs()
        );
        return;
    }
    println!("{name} connected ssid={SSID}");

    let elsewhere = Request::WifiTrial {
        networks: vec![WifiNetwork {
            ssid: ELSEWHERE.into(),
            passphrase: ELSEWHERE_PASSPHRASE.into(),
        }],
        revert_after_s: REVERT_AFTER_S,
    };
    println!("{name} trial elsewhere reply={}", ask(&elsewhere));
    match status.wait(|s| connected_ssid(s).is_none() && s["wifi"]["networks"][0] == ELSEWHERE) {
        Some(_) => println!("{name} left ssid={SSID}"),
        None => println!("{name} still on ssid={SSID}"),
    }
    match status
        .wait(|s| s["last_trial"]["outcome"] == "reverted" && connected_ssid(s) == Some(SSID))
    {
        Some(s) => println!(
            "{name} back ssid={SSID} outcome=reverted reason={}",
            s["last_trial"]["reason"]
        ),
        None => println!("{name} not back on ssid={SSID}"),
    }

    let home = Request::WifiTrial {
        networks: vec![WifiNetwork {
            ssid: SSID.into(),
            passphrase: PASSPHRASE.into(),
        }],
        revert_after_s: 60,
    };
    println!("{name} trial home reply={}", ask(&home));
    println!("{name} commit reply={}", ask(&Request::Commit {}));
    println!("{name} second commit reply={}", ask(&Request::Commit {}));
    match status.wait(|s| s["last_trial"]["outcome"] == "committed") {
        Some(s) => println!(
            "{name} status last_trial=committed networks={} passphrase_shown={}",
            s["last_trial"]["networks"][0].as_str().unwrap_or("?"),
            if status.passphrase_shown { "yes" } else { "no" }
        ),
        None => println!("{name} status shows no committed trial"),
    }
}

/// One request, its reply line (or what went wrong).
fn ask(request: &Request) -> String {
    let exchange = || -> std::io::Result<String> {
        let mut stream = UnixStream::connect(SOCKET_PATH)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.write_all(request.to_line().as_bytes())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply.trim_end().to_owned())
    };
    exchange().unwrap_or_else(|err| format!("error:{err}"))
}

/// netd's status socket, read until a condition holds; remembers whether a passphrase ever
/// appeared in it.
#[derive(Default)]
struct Status {
    passphrase_shown: bool,
}

impl Status {
    fn wait(&mut self, holds: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let started = Instant::now();
        while started.elapsed() < LIMIT {
            if let Some(text) = read_status() {
                self.passphrase_shown |=
                    text.contains(PASSPHRASE) || text.contains(ELSEWHERE_PASSPHRASE);
                let status: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if holds(&status) {
                    return Some(status);
                }
            }
            sleep(Duration::from_millis(500));
        }
        None
    }
}

fn read_status() -> Option<String> {
    let mut stream = UnixStream::connect(STATUS_SOCKET).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The SSID of the first connected station.
fn connected_ssid(status: &serde_json::Value) -> Option<&str> {
    status["wifi"]["stations"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == "connected")?["ssid"]
        .as_str()
}
