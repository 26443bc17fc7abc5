//! agentd as the bench runs it: the release binary `cargo bench` built, its state and runtime
//! directories in the run's directory, and the owner settings PID 1 would leave there on
//! first boot (the fakes' loopback URLs and a pairing code). The owner pairs with
//! `/start <code>`, as they would by following the pairing link.

use std::path::{Path, PathBuf};
use std::process::Command;

use board_support::OWNER_SETTINGS_FILE;
use carapace_fakes::llm::DEFAULT_KEY;
use carapace_fakes::telegram::{BOT_USERNAME, TOKEN};

use crate::agents::{Agent, WAIT, bare_command};
use crate::error::{Context, Result};
use crate::fakes::Fakes;

const CODE: &str = "PairMeNow-0123456789";

pub struct Agentd {
    binary: PathBuf,
}

impl Agentd {
    pub fn new() -> Agentd {
        Agentd {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_agentd")),
        }
    }
}

impl Agent for Agentd {
    fn name(&self) -> &'static str {
        "agentd"
    }

    fn binary(&self) -> &Path {
        &self.binary
    }

    fn command(&self, fakes: &Fakes, dir: &Path) -> Result<Command> {
        let state = dir.join("state");
        let runtime = dir.join("run");
        for path in [&state, &runtime] {
            std::fs::create_dir_all(path).context(|| format!("create {}", path.display()))?;
        }
        // Read once, on the first start; later starts find the settings in the store.
        let settings = state.join(OWNER_SETTINGS_FILE);
        if !state.join("audit.log").exists() {
            std::fs::write(&settings, owner_settings(fakes))
                .context(|| format!("write {}", settings.display()))?;
        }
        let mut command = bare_command(&self.binary, dir.to_path_buf());
        command
            .env("STATE_DIRECTORY", &state)
            .env("RUNTIME_DIRECTORY", &runtime);
        Ok(command)
    }

    fn introduce(&self, fakes: &Fakes) -> Result<()> {
        let sent = fakes.telegram.sent().len();
        fakes.say(&format!("/start {CODE}"));
        fakes.wait_reply(sent, "Paired", WAIT).map(|_| ())
    }
}

fn owner_settings(fakes: &Fakes) -> String {
    format!(
        "pairing_code = \"{CODE}\"\n\n[telegram]\nbot = \"{BOT_USERNAME}\"\ntoken = \"{TOKEN}\"\napi_base = \"{}\"\n\n[[llm]]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"test-model\"\napi_key = \"{DEFAULT_KEY}\"\n",
        fakes.telegram.api_base(),
        fakes.llm_base_url()
    )
}
