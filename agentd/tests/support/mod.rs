//! The harness for agentd's end-to-end tests on this machine: the fakes of Telegram and an
//! OpenAI-compatible API on loopback (plain HTTP, which the box allows to loopback only), a
//! fake of netd's control socket that records what agentd asks, and the real agentd binary
//! with a state directory that survives its restarts. The real local inference engine runs in
//! this process for the tests of memories (engine.rs); the others point agentd at a closed port.

pub mod engine;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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
    pub netd: FakeNetd,
    pub handle: tokio::runtime::Handle,
    pub state: tempfile::TempDir,
    pub runtime_dir: tempfile::TempDir,
    agentd: Option<Child>,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// The local inference engine agentd is given at its next start: [`engine::url`], or by
    /// default a closed port (no test depends on an engine listening at the real address).
    pub inference_url: String,
    /// The skills folder agentd loads at start (empty unless a test puts skills there).
    pub skills: tempfile::TempDir,
    /// The skill host service agentd calls.
    pub skillhost: SkillHostService,
    /// The image's update keys as agentd reads them: update-root.pub and update-keys.json,
    /// trusting [`pack_signing_key`].
    pub update_keys: tempfile::TempDir,
    /// GitHub's API for `/install_skill` (a fake on loopback), from agentd's next start.
    pub github_api: Option<String>,
}

/// The update signing key the harness's key list names: it signs the packs a test sends.
pub fn pack_signing_key() -> carapace_update::SecretKey {
    carapace_update::SecretKey::from_seed(carapace_update::KeyKind::Signing, &[21; 32])
}

fn update_keys() -> tempfile::TempDir {
    use carapace_update::{KeyKind, SecretKey, Trust};
    let dir = tempfile::tempdir().expect("update keys dir");
    let root = SecretKey::from_seed(KeyKind::Root, &[20; 32]);
    let trust = Trust::of_keys(&root, &[&pack_signing_key()]).expect("a key list");
    std::fs::write(
        dir.path().join("update-root.pub"),
        root.public().to_file_text(),
    )
    .unwrap();
    let list = trust.signed_key_list().to_file_text();
    std::fs::write(dir.path().join("update-keys.json"), list).unwrap();
    dir
}

/// The workspace's carapace-skillhost, beside agentd in the target folder (`cargo test
/// --workspace` builds it; alone, `cargo build -p carapace-skillhost`).
pub fn skillhost_program() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_agentd")).with_file_name("carapace-skillhost")
}

/// The skill host service as PID 1 runs it (`carapace-skillhost serve --client UID`), for this
/// process's uid, with runtime and state directories of its own; stopped when dropped.
pub struct SkillHostService {
    child: Child,
    runtime: tempfile::TempDir,
    /// Its state directory: scratch/<skill>/ and compiled/.
    pub state: tempfile::TempDir,
}

impl SkillHostService {
    pub fn start() -> SkillHostService {
        let runtime = tempfile::tempdir().expect("skill host runtime dir");
        let state = tempfile::tempdir().expect("skill host state dir");
        let child = SkillHostService::spawn(&runtime, &state);
        SkillHostService {
            child,
            runtime,
            state,
        }
    }

    /// Stops the service, leaving its socket behind as a crash does: nothing answers there.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, on the same socket and state.
    pub fn restart(&mut self) {
        self.stop();
        self.child = SkillHostService::spawn(&self.runtime, &self.state);
    }

    fn spawn(runtime: &tempfile::TempDir, state: &tempfile::TempDir) -> Child {
        let uid = rustix::process::getuid().as_raw();
        let mut child = Command::new(skillhost_program())
            .args(["serve", "--client", &uid.to_string()])
            .env("RUNTIME_DIRECTORY", runtime.path())
            .env("STATE_DIRECTORY", state.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the skill host service");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut first).expect("its first line");
        assert!(first.starts_with("listening on "), "{first}");
        // Keep draining: a full pipe would block it.
        std::thread::spawn(move || for _ in reader.lines() {});
        child
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime.path().join("calls.sock")
    }
}

impl Drop for SkillHostService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the example skill `name` (tests/skills) into `skills` and builds its code, if it has
/// any, with `carapace skill build`'s code.
pub fn install_example_skill(skills: &Path, name: &str) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let from = workspace.join("tests/skills").join(name);
    let to = skills.join(name);
    let mut pending = vec![PathBuf::new()];
    while let Some(inside) = pending.pop() {
        std::fs::create_dir_all(to.join(&inside)).unwrap();
        for entry in std::fs::read_dir(from.join(&inside)).unwrap() {
            let entry = entry.unwrap();
            let path = inside.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                std::fs::copy(from.join(&path), to.join(&path)).unwrap();
            }
        }
    }
    if to.join(carapace_skills::DECLARATION_FILE).is_file() {
        carapace_image::skill_build::build(&to, &workspace)
            .unwrap_or_else(|err| panic!("carapace skill build {name}: {err}"));
    }
}

impl Harness {
    /// A fake GitHub on loopback (plain http, API and file host at one address) serving
    /// `files` of acme/`repo` at ref main.
    pub fn github_on_loopback(
        &self,
        repo: &str,
        files: std::collections::BTreeMap<String, Vec<u8>>,
    ) -> carapace_fakes::github::FakeGitHub {
        self.handle
            .block_on(carapace_fakes::github::FakeGitHub::start(
                "127.0.0.1:0".parse().expect("address"),
                None,
                carapace_fakes::github::Repository {
                    owner: "acme".into(),
                    repo: repo.into(),
                    reference: "main".into(),
                    files,
                },
                |address| format!("http://{address}"),
            ))
            .expect("the fake GitHub")
    }

    /// The fakes, and agentd's state directory holding the owner settings as PID 1 leaves
    /// them there.
    pub fn new() -> Harness {
        Harness::with_feishu(false)
    }

    /// With `feishu`, the settings add the Feishu app (the fake's) to Telegram.
    pub fn with_feishu(feishu: bool) -> Harness {
        Harness::build(feishu, "")
    }

    /// The owner settings with `extra` TOML at their end (`[[wifi]]` tables, say).
    pub fn with_settings(extra: &str) -> Harness {
        Harness::build(false, extra)
    }

    fn build(feishu: bool, extra: &str) -> Harness {
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
        settings.push_str(extra);
        std::fs::write(state.path().join(OWNER_SETTINGS_FILE), settings).expect("settings");
        let runtime_dir = tempfile::tempdir().expect("runtime dir");
        let mut netd = FakeNetd::new(runtime_dir.path().join("netd-control.sock"));
        netd.listen();
        Harness {
            telegram,
            feishu: feishu_fake,
            llm,
            netd,
            handle,
            state,
            runtime_dir,
            agentd: None,
            lines: Arc::new(Mutex::new(Vec::new())),
            inference_url: engine::closed_url(),
            skills: tempfile::tempdir().expect("skills dir"),
            update_keys: update_keys(),
            github_api: None,
            skillhost: SkillHostService::start(),
        }
    }

    /// The owner sends a file (a skill's zip) in the Telegram chat.
    pub fn send_file(&self, name: &str, bytes: Vec<u8>) {
        self.telegram
            .inject_document(OWNER, OWNER, "Ann", name, bytes, "");
    }

    pub fn start(&mut self) {
        let mut agentd = Command::new(env!("CARGO_BIN_EXE_agentd"));
        if let Some(api) = &self.github_api {
            agentd.env("GITHUB_API_URL", api);
        }
        let mut child = agentd
            .env("STATE_DIRECTORY", self.state.path())
            .env("RUNTIME_DIRECTORY", self.runtime_dir.path())
            .env("NETD_CONTROL_SOCKET", &self.netd.path)
            .env("LOCAL_INFERENCE_URL", &self.inference_url)
            .env("SKILLS_DIRECTORY", self.skills.path())
            .env("SKILLHOST_PROGRAM", skillhost_program())
            .env("SKILLHOST_SOCKET", self.skillhost.socket())
            .env(
                "UPDATE_ROOT_KEY",
                self.update_keys.path().join("update-root.pub"),
            )
            .env(
                "UPDATE_KEY_LIST",
                self.update_keys.path().join("update-keys.json"),
            )
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
        self.wait_line_within(start, WAIT)
    }

    pub fn wait_line_within(&self, start: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
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
        self.wait_sent_within(count, WAIT)
    }

    pub fn wait_sent_within(&self, count: usize, wait: Duration) -> Vec<Sent> {
        let sent = self.handle.block_on(self.telegram.wait_sent(count, wait));
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
        self.netd.close();
    }
}

/// netd's control socket as agentd sees it: one JSON line in, one out. Every request is
/// recorded; the answer is `{"ok":true}` unless a test queued a refusal.
pub struct FakeNetd {
    pub path: PathBuf,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
    refusals: Arc<Mutex<VecDeque<String>>>,
    stop: Option<Arc<AtomicBool>>,
}

impl FakeNetd {
    fn new(path: PathBuf) -> FakeNetd {
        FakeNetd {
            path,
            requests: Arc::default(),
            refusals: Arc::default(),
            stop: None,
        }
    }

    /// Binds the socket and answers on a thread of its own.
    pub fn listen(&mut self) {
        let listener = UnixListener::bind(&self.path).expect("bind the fake netd");
        let stop = Arc::new(AtomicBool::new(false));
        self.stop = Some(Arc::clone(&stop));
        let requests = Arc::clone(&self.requests);
        let refusals = Arc::clone(&self.refusals);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                if BufReader::new(&stream).read_line(&mut line).is_err() {
                    continue;
                }
                let request = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                requests.lock().expect("requests").push(request);
                let reply = match refusals.lock().expect("refusals").pop_front() {
                    Some(error) => serde_json::json!({"ok": false, "error": error}),
                    None => serde_json::json!({"ok": true}),
                };
                let _ = writeln!(stream, "{reply}");
            }
        });
    }

    /// Stops answering and removes the socket: netd is not there.
    pub fn close(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.store(true, Ordering::SeqCst);
            // Wakes the thread from accept().
            let _ = UnixStream::connect(&self.path);
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The next request gets `{"ok":false,"error":error}`.
    pub fn refuse_next(&self, error: &str) {
        self.refusals
            .lock()
            .expect("refusals")
            .push_back(error.to_string());
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().expect("requests").clone()
    }

    /// Waits until `count` requests came, and returns them all.
    pub fn wait_requests(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("netd got {:?}, not {count} requests", self.requests());
    }
}
