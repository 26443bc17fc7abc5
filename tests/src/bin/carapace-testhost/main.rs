//! The host side of the network tests: small programs the tests run inside network
//! namespaces, one subcommand per file. Probes print one line, `ok` or `error <kind>: <io
//! error>`, so that a test can check why a connection failed, not just that it did.
//!
//!   carapace-testhost tcp <addr:port> [timeout-ms]   connect, send a line, read the echo
//!   carapace-testhost udp <addr:port> [timeout-ms]   send a datagram, wait for the echo
//!   carapace-testhost serve <tcp|udp>:<addr:port>... echo servers; prints `ready` when bound

mod probe_outcome;
mod serve;
mod tcp_probe;
mod udp_probe;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Long enough for a veth round trip many times over, short enough that a dropped SYN
/// fails the probe quickly.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

const USAGE: &str =
    "usage: carapace-testhost tcp|udp <addr:port> [timeout-ms] | serve <tcp|udp>:<addr:port>...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["tcp", rest @ ..] => probe_args(rest).map(|(a, t)| tcp_probe::run(a, t)),
        ["udp", rest @ ..] => probe_args(rest).map(|(a, t)| udp_probe::run(a, t)),
        ["serve", specs @ ..] if !specs.is_empty() => serve::run(specs),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("carapace-testhost: {message}");
            ExitCode::from(2)
        }
    }
}

fn probe_args(rest: &[&str]) -> Result<(SocketAddr, Duration), String> {
    let (address, timeout) = match rest {
        [address] => (address, DEFAULT_TIMEOUT),
        [address, millis] => (
            address,
            Duration::from_millis(
                millis
                    .parse()
                    .map_err(|_| format!("timeout {millis:?} is not a number of milliseconds"))?,
            ),
        ),
        _ => return Err(USAGE.to_owned()),
    };
    let address = address.parse().map_err(|_| {
        format!(
            "{address:?} is not an address with a port, e.g. 198.18.0.1:443 or [2001:db8::1]:443"
        )
    })?;
    Ok((address, timeout))
}
