//! ZeroClaw, the small Rust agent runtime people pick for small boxes, as the baseline: the
//! release from crates.io, installed once into the bench cache with `cargo +nightly install`
//! (0.8.7 needs Rust 1.96), and run the way `zeroclaw service install` runs it
//! (`zeroclaw daemon`), with everything it writes in the run's directory.
//!
//! Its configuration (config.toml, schema 3), written for the run's fakes:
//! - `[providers.models.custom.bench]`: the OpenAI-compatible family, `uri` = the fake LLM's
//!   …/v1, its key, `native_tools = true` (tools in the request's `tools`, as agentd sends
//!   them, rather than described in the system prompt, the family's default);
//! - `[agents.bench]`: that provider, the `default` risk profile, the Telegram channel;
//! - `[channels.telegram.default]`: the fake's token, `api_base_url` = the fake Telegram;
//! - `[peer_groups.owner]`: the owner's user id, the only one allowed on that channel;
//! - `[gateway]`: loopback, on a free port.

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_fakes::llm::DEFAULT_KEY;
use carapace_fakes::telegram::TOKEN;

use crate::agents::{Agent, bare_command};
use crate::error::{Context, Result, fail};
use crate::fakes::{Fakes, OWNER};

pub const VERSION: &str = "0.8.7";

pub struct ZeroClaw {
    binary: PathBuf,
}

impl ZeroClaw {
    /// The installed release, installing it first if the cache does not hold it.
    pub fn install() -> Result<ZeroClaw> {
        let root = cache_dir().join("bench/zeroclaw");
        let binary = root.join("bin/zeroclaw");
        if !installed(&binary) {
            cargo_install(&root)?;
            if !installed(&binary) {
                return Err(fail(format!(
                    "`cargo +nightly install zeroclaw` succeeded but {} does not say it is {VERSION}; remove {} and run `make bench` again",
                    binary.display(),
                    root.display()
                )));
            }
        }
        Ok(ZeroClaw { binary })
    }
}

impl Agent for ZeroClaw {
    fn name(&self) -> &'static str {
        "ZeroClaw"
    }

    fn binary(&self) -> &Path {
        &self.binary
    }

    fn command(&self, fakes: &Fakes, dir: &Path) -> Result<Command> {
        let config_dir = dir.join("config");
        let home = dir.join("home");
        for path in [&config_dir, &home] {
            std::fs::create_dir_all(path).context(|| format!("create {}", path.display()))?;
        }
        let port = free_port()?;
        let file = config_dir.join("config.toml");
        std::fs::write(&file, config(fakes, port))
            .context(|| format!("write {}", file.display()))?;
        let mut command = bare_command(&self.binary, home);
        command.arg("--config-dir").arg(&config_dir).args([
            "daemon",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]);
        Ok(command)
    }

    fn help(&self) -> String {
        format!(
            "the configuration is the one config() in agentd/benches/agent/zeroclaw.rs writes for ZeroClaw {VERSION}; if {} is another release, remove it to install {VERSION} again; CARAPACE_BENCH_ECHO=1 shows all of ZeroClaw's output",
            self.binary.display()
        )
    }
}

/// The configuration for these fakes (see the module's comment).
fn config(fakes: &Fakes, gateway_port: u16) -> String {
    format!(
        r#"schema_version = 3

[providers.models.custom.bench]
uri = "{llm}"
api_key = "{DEFAULT_KEY}"
model = "test-model"
native_tools = true

[risk_profiles.default]

[agents.bench]
model_provider = "custom.bench"
risk_profile = "default"
channels = ["telegram.default"]

[channels.telegram.default]
enabled = true
bot_token = "{TOKEN}"
api_base_url = "{telegram}"

[peer_groups.owner]
channel = "telegram.default"
external_peers = ["{OWNER}"]

[gateway]
host = "127.0.0.1"
port = {gateway_port}
"#,
        llm = fakes.llm_base_url(),
        telegram = fakes.telegram.api_base(),
    )
}

/// Whether `binary` runs and says it is the release the bench compares against.
fn installed(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(VERSION)
        })
}

fn cargo_install(root: &Path) -> Result<()> {
    eprintln!(
        "bench: installing ZeroClaw {VERSION} into {} (cargo +nightly install: a long compile, once per machine)",
        root.display()
    );
    let status = Command::new(cargo_proxy())
        .args(["+nightly", "install", "zeroclaw", "--version", VERSION, "--locked"])
        .arg("--root")
        .arg(root)
        // Not this build's toolchain or target directory: rustup's `+nightly` decides.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context(|| {
            "run `cargo +nightly install zeroclaw`: is rustup's cargo on PATH? Install rustup (https://rustup.rs)".into()
        })?;
    if !status.success() {
        return Err(fail(format!(
            "`cargo +nightly install zeroclaw --version {VERSION} --locked --root {}` failed ({status}). ZeroClaw {VERSION} needs Rust 1.96: `rustup toolchain install nightly`, and network to crates.io; its output above says what went wrong",
            root.display()
        )));
    }
    Ok(())
}

/// rustup's cargo (which understands `+nightly`), not the toolchain's own cargo that may come
/// first on PATH while `cargo bench` runs.
fn cargo_proxy() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    match cargo_home.map(|home| home.join("bin/cargo")) {
        Some(proxy) if proxy.exists() => proxy,
        _ => PathBuf::from("cargo"),
    }
}

/// The bench cache shared by every checkout: CARAPACE_CACHE, else $XDG_CACHE_HOME/carapace,
/// else ~/.cache/carapace (as `carapace build` finds it).
fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("CARAPACE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("carapace");
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/carapace"),
        None => PathBuf::from(".cache/carapace"),
    }
}

/// A loopback port nobody listens on, for ZeroClaw's gateway.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context(|| "find a free port".into())?;
    Ok(listener
        .local_addr()
        .context(|| "find a free port".into())?
        .port())
}
