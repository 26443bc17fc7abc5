//! `wificheck`, when the test asks for it: reads netd's status socket until a Wi-Fi station
//! is connected and prints what it shows (and whether the test passphrase appears anywhere in
//! it), then kills hostapd so the test sees netd join again once PID 1 restarts it.

use std::io::Read;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::test_request;

const STATUS_SOCKET: &str = "/run/netd/status.sock";
/// The test recipe's passphrase for the test access point.
const PASSPHRASE: &str = "test-passphrase-1234";
const LIMIT: Duration = Duration::from_secs(180);

pub fn run() {
    if !test_request::asks_for("wificheck") {
        return;
    }
    let name = "wificheck";
    let started = Instant::now();
    let (text, station) = loop {
        if let Some(found) = connected_station() {
            break found;
        }
        if started.elapsed() > LIMIT {
            println!("{name} no connected station within {} s", LIMIT.as_secs());
            return;
        }
        sleep(Duration::from_millis(500));
    };
    let status: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let networks: Vec<&str> = status["wifi"]["networks"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    println!(
        "{name} status {} state={} ssid={} signal_dbm={} networks={} passphrase_shown={}",
        station["interface"].as_str().unwrap_or("?"),
        station["state"].as_str().unwrap_or("?"),
        station["ssid"].as_str().unwrap_or("?"),
        station["signal_dbm"],
        networks.join(","),
        if text.contains(PASSPHRASE) {
            "yes"
        } else {
            "no"
        }
    );
    match pid_of("hostapd") {
        Some(pid) => match rustix::process::Pid::from_raw(pid)
            .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM))
        {
            Some(Ok(())) => println!("{name} killed hostapd pid={pid}"),
            Some(Err(err)) => println!("{name} kill hostapd pid={pid}: {err}"),
            None => println!("{name} bad hostapd pid={pid}"),
        },
        None => println!("{name} no hostapd process"),
    }
}

/// The status text and its first connected station, once there is one.
fn connected_station() -> Option<(String, serde_json::Value)> {
    let mut stream = std::os::unix::net::UnixStream::connect(STATUS_SOCKET).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status: serde_json::Value = serde_json::from_str(&text).ok()?;
    let station = status["wifi"]["stations"]
        .as_array()?
        .iter()
        .find(|s| s["state"] == "connected" && s["signal_dbm"].is_number())?
        .clone();
    Some((text, station))
}

fn pid_of(command: &str) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == command).then_some(pid)
        })
}
