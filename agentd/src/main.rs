//! agentd, the agent daemon. It runs under Carapace's PID 1 as its own unprivileged user
//! with no capabilities; docs/boot-contract.md says what PID 1 gives it.
//!
//! Start: the identity, the audit log, the store, the owner's first-boot settings (their
//! Wi-Fi networks handed to netd in the background), the links (IM channels, LLM); while
//! unpaired, the pairing link and QR code on the console; then READY=1, and the runtime
//! (runtime.rs) until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tokio::signal::unix::{SignalKind, signal};

use board_support::notify::Message;
use carapace_agentd::agent::Agent;
use carapace_agentd::config::Config;
use carapace_agentd::error::Error;
use carapace_agentd::health::{self, HealthInfo, HealthServer};
use carapace_agentd::identity::{self, Identity};
use carapace_agentd::local_inference::LocalInference;
use carapace_agentd::netd_control::{self, NetdControl};
use carapace_agentd::notify::{Notifier, WATCHDOG_PERIOD};
use carapace_agentd::owner_file::{self, Import};
use carapace_agentd::pairing::{self, Guard};
use carapace_agentd::runtime::{Runtime, now};
use carapace_agentd::screen;
use carapace_agentd::skills::Skills;
use carapace_agentd::store::Store;
use carapace_agentd::tools::Registry;
use carapace_agentd::turn::TurnLimits;
use carapace_audit::AuditLog;
use carapace_owner::{OwnerSettings, qr};

const AUDIT_FILE: &str = "audit.log";
const PAIRING_PNG: &str = "pairing-qr.png";

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
    let notifier = Arc::new(Notifier::from_fd(config.notify_fd)?);

    let (identity, origin) = Identity::load_or_create(&config.state_dir.join(identity::FILE_NAME))?;
    let public_key = identity.public_key_hex();
    println!("identity ed25519={public_key} {origin}");

    let audit = AuditLog::open(
        &config.state_dir.join(AUDIT_FILE),
        identity.signing_key(),
        now(),
    )?;
    let store = Arc::new(Store::open(&config.state_dir)?);
    match owner_file::import(&config.state_dir, &store, now())? {
        Import::Nothing => {}
        Import::Imported => println!("owner settings imported"),
        Import::IgnoredPaired => println!(
            "owner settings on the boot partition ignored: the box is paired; change settings from the owner's chat"
        ),
        Import::Rejected(reason) => println!(
            "owner settings rejected: {reason}; fix the file and put it on the boot partition again (kept as {})",
            owner_file::REJECTED_FILE
        ),
    }
    let settings = match store.settings("current")? {
        Some(text) => match OwnerSettings::parse(&text) {
            Ok(settings) => settings,
            Err(error) => {
                println!("settings unusable ({error}); starting without them");
                OwnerSettings::default()
            }
        },
        None => {
            println!(
                "no owner settings yet: flash the box with `carapace flash --settings FILE` (or the owner flags), or build the image with `carapace build --owner-settings FILE`"
            );
            OwnerSettings::default()
        }
    };

    let netd = NetdControl::new(config.netd_control.clone());
    if store.settings(netd_control::FIRST_BOOT_PENDING)?.is_some() {
        if settings.wifi.is_empty() {
            store.put_setting(netd_control::FIRST_BOOT_PENDING, None)?;
        } else {
            tokio::spawn(netd_control::hand_over_first_boot(
                netd.clone(),
                settings.wifi.clone(),
                Arc::clone(&store),
            ));
        }
    }

    let http = carapace_http::client()?;
    let skill_host = config.skillhost.is_file().then(|| {
        Arc::new(carapace_agentd::skill_code::SkillHost {
            socket: config.skillhost_socket.clone(),
            http: http.clone(),
            limits: Default::default(),
        })
    });
    let skills = Skills::load(
        &config.skills_dir,
        &config.state_dir.join("skills"),
        skill_host,
        config.update_keys.clone(),
        config.github_api.clone(),
    );
    let mut tools = Registry::standard();
    skills.add_tools(&mut tools);
    let mut agent = Agent {
        store: Arc::clone(&store),
        audit,
        tools: with_mcp_servers(tools, &store, &http)?,
        skills,
        guard: Guard::default(),
        identity: format!("ed25519:{public_key}"),
        hostname: read_hostname(),
        settings,
        limits: TurnLimits::default(),
        updates: carapace_agentd::updates::UpdateControl::default(),
        inference: LocalInference::new(config.inference_url.clone())?,
        mcp: Some(carapace_agentd::mcp_servers::Access {
            http: http.clone(),
            netd: netd.clone(),
        }),
        recovery_key_file: config.state_dir.join(board_support::DATA_RECOVERY_KEY_FILE),
    };
    carapace_agentd::skill_install::clean_staging(&agent);
    if !store.has_owner()? {
        show_pairing(&agent, &store, &config.runtime_dir)?;
    }
    let configured = agent.settings.telegram.is_some() || agent.settings.feishu.is_some();
    agent.record(
        "start",
        &format!("agentd {} started", env!("CARGO_PKG_VERSION")),
        now(),
    );
    let self_test = carapace_agentd::self_test::run(&store, &identity.signing_key(), now());
    println!("self-test {self_test}");
    let mut runtime = Runtime::new(agent, http, netd, Arc::clone(&notifier));
    runtime.self_test = self_test;
    runtime.finish_interrupted_trial();
    if configured {
        runtime.start_links();
    }

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
        never = runtime.run() => match never {},
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    println!("stopping signal={stopped_by}");
    server.remove_socket()
}

/// The pairing link and its QR code on the console (serial and screen), and as a PNG in the
/// runtime directory.
fn show_pairing(agent: &Agent, store: &Store, runtime_dir: &std::path::Path) -> Result<(), Error> {
    let Some(telegram) = &agent.settings.telegram else {
        if agent.settings.feishu.is_some() {
            let code = pairing::first_owner_code(store, now())?;
            println!(
                "pairing code={} (send it to the bot on Feishu)",
                code.as_str()
            );
        }
        return Ok(());
    };
    let code = pairing::first_owner_code(store, now())?;
    let link = code.telegram_link(&telegram.bot);
    println!("pairing link={link}");
    let drawn = qr::text(&link)?;
    for line in drawn.lines() {
        println!("{line}");
    }
    screen::show(&format!(
        "Scan to pair this box with your Telegram account:\n\n{drawn}\n{link}"
    ));
    let png = runtime_dir.join(PAIRING_PNG);
    if let Err(source) = board_support::atomic_file::write(&png, &qr::png(&link)?, 0o600) {
        return Err(Error::File {
            what: format!("writing {}", png.display()),
            source,
        });
    }
    Ok(())
}

fn read_hostname() -> String {
    std::fs::read_to_string(board_support::IMAGE_INFO_PATH)
        .ok()
        .and_then(|text| board_support::ImageInfo::parse(&text).ok())
        .map_or_else(|| "carapace".to_string(), |info| info.hostname)
}

/// The tools of the MCP servers the owner added, from the store (no network at start).
fn with_mcp_servers(
    mut registry: Registry,
    store: &carapace_agentd::store::Store,
    http: &carapace_http::Client,
) -> Result<Registry, Error> {
    for server in carapace_agentd::mcp_servers::load(store)? {
        for tool in carapace_agentd::mcp_servers::tools(&server, http) {
            registry.add(tool);
        }
    }
    Ok(registry)
}
