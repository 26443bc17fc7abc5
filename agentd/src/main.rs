//! agentd, the agent daemon. It runs under Carapace's PID 1 as its own unprivileged user
//! with no capabilities; docs/boot-contract.md says what PID 1 gives it.
//!
//! This first cut holds the device identity, answers health queries and tells PID 1 it is
//! ready and alive; the parts live in the library (lib.rs).

use std::process::ExitCode;
use std::time::Instant;

use tokio::signal::unix::{SignalKind, signal};

use board_support::notify::Message;
use carapace_agentd::config::Config;
use carapace_agentd::error::Error;
use carapace_agentd::health::{self, HealthInfo, HealthServer};
use carapace_agentd::identity::{self, Identity};
use carapace_agentd::notify::{Notifier, WATCHDOG_PERIOD};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fatal: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let started = Instant::now();
    let signal_error = |signal| move |source| Error::Signal { signal, source };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error("SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error("SIGINT"))?;

    let config = Config::from_env()?;
    let notifier = Notifier::from_fd(config.notify_fd)?;

    let (identity, origin) = Identity::load_or_create(&config.state_dir.join(identity::FILE_NAME))?;
    let public_key = identity.public_key_hex();
    println!("identity ed25519={public_key} {origin}");

    let info = HealthInfo {
        identity: format!("ed25519:{public_key}"),
        version: env!("CARGO_PKG_VERSION"),
        started,
    };
    let server = HealthServer::bind(&config.runtime_dir.join(health::SOCKET_NAME), info)?;
    println!("health socket={}", server.path().display());

    notifier.notify(Message::Ready)?;
    println!("ready");

    let stopped_by = tokio::select! {
        never = server.serve() => match never {},
        never = notifier.pet_watchdog(WATCHDOG_PERIOD) => match never {},
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    println!("stopping signal={stopped_by}");
    server.remove_socket()
}
