//! netd's one error type: each variant names what failed.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("bind {what}: {source}")]
    Bind { what: String, source: io::Error },
    #[error("netlink: {what}: {message}")]
    Netlink { what: String, message: String },
    #[error("set the clock to {unix_secs} s: {source}")]
    SetClock { unix_secs: i64, source: io::Error },
    #[error("slew the clock by {secs:.3} s: {source}")]
    SlewClock { secs: f64, source: io::Error },
    #[error("firewall: {0}")]
    Firewall(#[from] carapace_netpolicy::Error),
    #[error("firewall: {0}")]
    FirewallTask(String),
    #[error("listen for {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: io::Error,
    },
    #[error("tell PID 1: {0}")]
    Notify(io::Error),
    #[error("{0}")]
    NotifySetup(#[from] board_support::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
