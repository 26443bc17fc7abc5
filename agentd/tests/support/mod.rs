//! The harness for agentd's end-to-end tests on this machine: the fakes of Telegram and an
//! OpenAI-compatible API on loopback (plain HTTP, which the box allows to loopback only), and
//! the real agentd binary with a state directory that survives its restarts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use board_support::OWNER_SETTINGS_FILE;
use carapace_fakes::feishu::{APP_ID, APP_SECRET, FakeFeishu};
use carapace_fakes::llm::{Api, DEFAULT_KEY, FakeLlm};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, Sent, TOKEN};

pub const OWNER: i64 = 4242;
pub const STRANGER: i64 = 6666;
pub const CODE: &str = "PairMeNow-0123456789";
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Harness {
    pub telegram: FakeTelegram,
    pub feishu: FakeFeishu,
    pub llm: FakeLlm,
    pub handle: tokio::runtime::Handle,
    pub state: tempfile::TempDir,
    pub runtime_dir: tempfile::TempDir,
    agentd: Option<Child>,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    /// The fakes, and agentd's state directory holding the owner settings as PID 1 leaves
    /// them there.
    pub fn new() -> Harness {
        Harness::with_feishu(false)
    }

    /// With `feishu`, the settings add the Feishu app (the fake's) to Telegram.
    pub fn with_feishu(feishu: bool) -> Harness {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let handle = runtime.handle().clone();
        let (telegram, feishu_fake, llm) = runtime.block_on(async {
            let local = "127.0.0.1:0".parse().expect("address");
            let telegram = FakeTelegram::start(local, None)
                .await
                .expect("fake telegram");
            let feishu = FakeFeishu::start(local, None).await.expect("fake feishu");
            let llm = FakeLlm::start(local, None).await.expect("fake llm");
            (telegram, feishu, llm)
        });
        std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
        let state = tempfile::tempdir().expect("state dir");
        let mut settings = format!(
            "pairing_code = \"{CODE}\"\n[telegram]\nbot = \"{BOT_USERNAME}\"\ntoken = \"{TOKEN}\"\napi_base = \"{}\"\n\n[[llm]]\napi = \"openai\"\nbase_url = \"{}\"\nmodel = \"test-model\"\napi_key = \"{DEFAULT_KEY}\"\n",
            telegram.api_base(),
            llm.base_url(Api::OpenAi)
        );
        if feishu {
            settings.push_str(&format!(
                "\n[feishu]\napp_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\ndomain = \"{}\"\n",
                feishu_fake.domain()
            ));
        }
        std::fs::write(state.path().join(OWNER_SETTINGS_FILE), settings).expect("settings");
        Harness {
            telegram,
            feishu: feishu_fake,
            llm,
            handle,
            state,
            runtime_dir: tempfile::tempdir().expect("runtime dir"),
            agentd: None,
            lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentd"))
            .env("STATE_DIRECTORY", self.state.path())
            .env("RUNTIME_DIRECTORY", self.runtime_dir.path())
            .env_remove("NOTIFY_FD")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentd");
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&self.lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if std::env::var_os("CARAPACE_TEST_ECHO").is_some() {
                        eprintln!("agentd: {line}");
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        self.agentd = Some(child);
        self.wait_line("ready");
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.agentd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn wait_line(&self, start: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(line) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.starts_with(start))
            {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "agentd printed no line starting {start:?}: {:?}",
            self.lines.lock().expect("lines")
        );
    }

    /// Waits until the bot sent `count` messages in all, and returns them.
    pub fn wait_sent(&self, count: usize) -> Vec<Sent> {
        let sent = self.handle.block_on(self.telegram.wait_sent(count, WAIT));
        assert!(
            sent.len() >= count,
            "waited for {count} messages, got {sent:?}; agentd said {:?}",
            self.lines.lock().expect("lines")
        );
        sent
    }

    pub fn say(&self, text: &str) {
        self.telegram.inject_text(OWNER, OWNER, "Ann", text);
    }

    /// Pairs the owner and returns the reply.
    pub fn pair(&self) -> Sent {
        let before = self.telegram.sent().len();
        self.say(&format!("/start {CODE}"));
        self.wait_sent(before + 1)[before].clone()
    }

    pub fn audit_log(&self) -> PathBuf {
        self.state.path().join("audit.log")
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.kill();
    }
}
