//! The one error type of agentd. Every message names the thing that was wrong and what to do.

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "environment variable {name} is not set; PID 1 sets it for agentd (when running agentd \
         by hand, set it to a directory agentd may write)"
    )]
    MissingEnv { name: &'static str },

    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    BadEnv {
        name: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("cannot {action} identity file {}: {source}", .path.display())]
    IdentityIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "identity file {} is corrupt: {reason}; restore it from a backup, or delete it to give \
         this device a new identity (it then has to be paired again)",
        .path.display()
    )]
    IdentityCorrupt { path: PathBuf, reason: String },

    #[error(
        "identity file {} has mode {mode:03o} and others may read it; if nobody did, run \
         `chmod 600 {}`, otherwise delete it to give this device a new identity",
        .path.display(),
        .path.display()
    )]
    IdentityExposed { path: PathBuf, mode: u32 },

    #[error("cannot get random bytes for a new identity: {0}")]
    Entropy(getrandom::Error),

    #[error("cannot get random bytes to name a question for the owner: {0}")]
    QuestionId(getrandom::Error),

    #[error("cannot {action} health socket {}: {source}", .path.display())]
    Socket {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{} exists and is not a socket; move it away so agentd can put its health socket there",
        .path.display()
    )]
    NotASocket { path: PathBuf },

    #[error("cannot use notification fd {fd} (NOTIFY_FD) to PID 1: {source}")]
    Notify {
        fd: RawFd,
        #[source]
        source: io::Error,
    },

    #[error(transparent)]
    NotifySetup(#[from] board_support::Error),

    #[error("cannot handle {signal}: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "agentd's store (/data/agentd/store.redb): {0}; if the disk is full, free space by \
         removing old logs; if the file is damaged, /audit and the owner's chat still work \
         after a factory reset"
    )]
    Store(#[from] redb::Error),

    #[error("agentd's store holds unreadable {table} data: {reason}")]
    StoreData { table: &'static str, reason: String },

    #[error(
        "agentd's store has schema {found}, which only an agentd of schema at least \
         {min_reader} may open (this one has {ours}): a newer version changed it and the box \
         now runs an older one; update it again"
    )]
    StoreSchema {
        found: u64,
        min_reader: u64,
        ours: u64,
    },

    #[error(
        "a memory has at most {max} characters (this one has {chars}); keep the essentials, or \
         split it into a few memories"
    )]
    MemoryTooLong { chars: usize, max: usize },

    #[error(
        "the box already keeps {max} memories, as many as it can; /recall finds old ones and \
         /forget_memory <number> removes one"
    )]
    MemoryFull { max: u64 },

    #[error(
        "the local inference engine is not answering at {url}: {reason}; it may still be \
         starting (give it a minute), or not running (see /logs)"
    )]
    InferenceUnreachable { url: String, reason: String },

    #[error("the local inference engine refused the request (HTTP {status}): {message}")]
    InferenceRefused { status: u16, message: String },

    #[error("the local inference engine's answer is unusable: {reason}")]
    InferenceAnswer { reason: String },

    #[error("the audit log: {0}")]
    Audit(#[from] carapace_audit::Error),

    #[error(transparent)]
    Owner(#[from] carapace_owner::Error),

    #[error("the HTTPS client: {0}")]
    Http(#[from] carapace_http::Error),

    #[error(
        "netd's control socket {}: {reason}; netd may still be starting, or not running",
        .path.display()
    )]
    NetdUnreachable { path: PathBuf, reason: String },

    /// netd's own words: what was wrong and what to do.
    #[error("netd refused: {0}")]
    NetdRefused(String),

    #[error("{what}: {source}")]
    File {
        what: String,
        #[source]
        source: io::Error,
    },
}
