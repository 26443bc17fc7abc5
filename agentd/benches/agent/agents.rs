//! What the bench needs to know about an agent: how to start it against a pair of fakes with
//! its state in a directory of its own, and what the owner does once before talking to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::fakes::Fakes;

/// Every wait for an agent's answer gives up after this.
pub const WAIT: Duration = Duration::from_secs(60);

pub trait Agent {
    fn name(&self) -> &'static str;

    /// The executable, for its size.
    fn binary(&self) -> &Path;

    /// The command that starts it against `fakes`, its state under `dir` (kept between a start
    /// and a restart). Writes its configuration there first.
    fn command(&self, fakes: &Fakes, dir: &Path) -> Result<Command>;

    /// What the owner does once, after the first start, before the agent answers them
    /// (agentd: pairing). Nothing by default.
    fn introduce(&self, _fakes: &Fakes) -> Result<()> {
        Ok(())
    }

    /// What to do when it does not start, for the error message.
    fn help(&self) -> String {
        "CARAPACE_BENCH_ECHO=1 shows all its output".into()
    }
}

/// A command with nothing of the bench's environment but PATH, HOME and the locale: no proxy
/// settings, no credentials, nothing the agent could pick up by accident.
pub fn bare_command(binary: &Path, home: PathBuf) -> Command {
    let mut command = Command::new(binary);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.env("HOME", home).env("LANG", "C.UTF-8");
    command
}
