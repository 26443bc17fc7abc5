//! `updated [--controller UID]...`: the update service PID 1 runs (service table:
//! `boot_control = true`, so the ESP is mounted for it at /boot/efi and the slot partitions
//! are its to read and write). See lib.rs for the flow.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;
use board_support::update_config::{UPDATE_CONFIG_PATH, UpdateConfig};
use board_support::update_control::SOCKET_NAME;
use board_support::{BootParams, IMAGE_INFO_PATH, ImageInfo};
use carapace_update::Version;
use carapace_updated::error::{Error, Result};
use carapace_updated::repository::Repository;
use carapace_updated::state::State;
use carapace_updated::updater::{Updater, jittered};
use carapace_updated::{check, control};

const USAGE: &str = "usage: updated [--controller UID]...";
const WAVE_ID_FILE: &str = "wave-id";
/// The first scheduled check comes within this long after boot (spread, so a fleet that lost
/// power together does not ask at once), unless check_hours says later.
const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(15 * 60);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fatal: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fatal: {err}");
            ExitCode::FAILURE
        }
    }
}

fn controllers() -> Result<Vec<u32>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut uids = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next().map(|uid| uid.parse::<u32>())) {
            ("--controller", Some(Ok(uid))) => uids.push(uid),
            _ => return Err(Error::Config(USAGE.into())),
        }
    }
    Ok(uids)
}

fn env_dir(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Config(format!(
                "{name} is not set; PID 1 sets it (state_dir, runtime_dir)"
            ))
        })
}

fn read_text(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::io("read", path))
}

/// 32 random bytes, made once and kept: the box's place in every rollout wave.
fn wave_id(state_dir: &Path) -> Result<Vec<u8>> {
    let path = state_dir.join(WAVE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(bytes) = hex::decode(text.trim())
        && bytes.len() == 32
    {
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Config(format!("no randomness for the wave id: {err}")))?;
    board_support::atomic_file::write(
        &path,
        format!("{}\n", hex::encode(&bytes)).as_bytes(),
        0o600,
    )
    .map_err(Error::io("write", &path))?;
    Ok(bytes)
}

async fn run() -> Result<()> {
    let controllers = controllers()?;
    let state_dir = env_dir("STATE_DIRECTORY")?;
    let runtime_dir = env_dir("RUNTIME_DIRECTORY")?;
    let notify = NotifyFd::from_env().map_err(|err| Error::Config(err.to_string()))?;

    let config = UpdateConfig::parse(&read_text(UPDATE_CONFIG_PATH)?)
        .map_err(|err| Error::Config(format!("{UPDATE_CONFIG_PATH}: {err}")))?;
    let image = ImageInfo::parse(&read_text(IMAGE_INFO_PATH)?)
        .map_err(|err| Error::Config(format!("{IMAGE_INFO_PATH}: {err}")))?;
    let running = Version::parse(&image.version)
        .map_err(|err| Error::Config(format!("{IMAGE_INFO_PATH}: version: {err}")))?;
    let params = BootParams::parse(&read_text("/proc/cmdline")?)?;
    let boot_id = read_text("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned();

    let (state, problem) = State::load(&state_dir);
    if let Some(problem) = problem {
        eprintln!("update: {problem}");
    }
    let trust = check::load_trust(&state_dir)?;
    let client = carapace_http::client().map_err(|err| Error::Config(err.to_string()))?;
    let repo = Repository::new(client, config.clone());
    let first_check = jittered(config.check_hours).min(FIRST_CHECK_WITHIN);
    println!(
        "update: {} {} slot {} follows {} channel {} (first check in {} s)",
        image.board,
        running,
        params.slot,
        config.server,
        config.channel,
        first_check.as_secs()
    );
    let updater = Arc::new(Updater::new(
        config,
        image.board,
        running,
        params,
        image.pi_trial_start,
        state_dir.clone(),
        boot_id,
        wave_id(&state_dir)?,
        repo,
        notify,
        trust,
        state,
    ));

    let listener = control::bind(&runtime_dir.join(SOCKET_NAME))?;
    if let Some(pipe) = &updater.notify {
        pipe.send(&Message::Ready)
            .map_err(Error::io("send READY=1 on", "the notify pipe"))?;
    }
    tokio::spawn(control::serve(listener, controllers, Arc::clone(&updater)));
    tokio::spawn(Arc::clone(&updater).run_schedule(first_check));
    updater.settle_trial().await;
    std::future::pending::<()>().await;
    Ok(())
}
