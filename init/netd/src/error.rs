//! netd's one error type: each variant names what failed.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::op::ResponseCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no upstream resolver is configured")]
    NoUpstream,
    #[error("binding a socket to query upstream {upstream}: {source}")]
    UpstreamBind {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("sending a query to upstream {upstream}: {source}")]
    UpstreamSend {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("receiving an answer from upstream {upstream}: {source}")]
    UpstreamReceive {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {upstream} did not answer within {timeout_ms} ms")]
    UpstreamTimeout {
        upstream: SocketAddr,
        timeout_ms: u128,
    },
    #[error("upstream {upstream} sent an answer that is not a DNS response to our question")]
    UpstreamAnswerMalformed { upstream: SocketAddr },
    #[error("upstream {upstream} answered {rcode}")]
    UpstreamRefused {
        upstream: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("encoding the query for upstream {upstream}: {source}")]
    UpstreamQueryEncode {
        upstream: SocketAddr,
        source: hickory_proto::ProtoError,
    },
    #[error("opening the firewall for {name}: {reason}")]
    AllowSink { name: String, reason: String },

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
    #[error("netd's arguments: {problem}; usage: netd [--controller <uid>]...")]
    Args { problem: String },
    #[error(
        "no Wi-Fi trial is pending, so there is nothing to {op}; netd goes back by itself when \
         a trial's time runs out (its status socket says so under last_trial)"
    )]
    NoTrial { op: &'static str },
    #[error("the new owner configuration does not check: {problem}")]
    TrialConfig { problem: String },
    #[error(
        "a Wi-Fi change is being tried, and going back would drop {name} from the allowlist; \
         ask again once it is committed or reverted (within a few minutes)"
    )]
    AllowDuringTrial { name: String },
    #[error(
        "a Wi-Fi change is being tried, and going back would bring {name} back into the \
         allowlist; ask again once it is committed or reverted (within a few minutes)"
    )]
    DisallowDuringTrial { name: String },
    #[error("{name} cannot join the allowlist: {problem}")]
    AllowEntry { name: String, problem: String },
    #[error("rename {} to {}: {source}", .from.display(), .to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("D-Bus: {what}: {source}")]
    Bus {
        what: String,
        source: Box<zbus::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
