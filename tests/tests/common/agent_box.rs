//! The default image with owner settings and the test CA, booted on a private network with
//! the Telegram and LLM fakes behind their real names, and paired with its owner through the
//! deep link's `/start <code>` (after a stranger was ignored): where the agent tests start.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use carapace_fakes::llm::{DEFAULT_KEY, FakeLlm};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, TOKEN};
use carapace_image::qemu::Vm;

use crate::common::{
    BOOT_TIMEOUT, RELEASE_RECIPE, fail, line_with, machine_of, workspace, write_release_variant,
};
use crate::net::{LLM_HOST, LLM_NAME, TELEGRAM_HOST, TestNet};

pub const OWNER: i64 = 4242;
pub const STRANGER: i64 = 6666;
pub const WAIT: Duration = Duration::from_secs(120);

/// The default recipe under another name, with the test CA added as a [[file]].
fn recipe_with_test_ca(dir: &Path, ca_pem: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(workspace().join(RELEASE_RECIPE)).expect("recipe");
    let renamed = text.replacen(
        "name = \"x86-64-qemu\"",
        "name = \"x86-64-qemu-agent-test\"",
        1,
    );
    assert_ne!(renamed, text, "the default recipe's name line moved");
    let with_ca = format!(
        "{renamed}\n# The test CA, so the box trusts the fakes' certificates.\n[[file]]\npath = \"{}\"\ntext = '''\n{ca_pem}'''\n",
        carapace_http::EXTRA_CA_PATH
    );
    write_release_variant(dir, "x86-64-qemu-agent-test", &with_ca)
}

fn owner_settings(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("owner.toml");
    std::fs::write(
        &path,
        format!(
            "[telegram]\nbot = \"{BOT_USERNAME}\"\ntoken = \"{TOKEN}\"\n\n[[llm]]\napi = \"openai\"\nbase_url = \"https://{LLM_NAME}/v1\"\nmodel = \"test-model\"\napi_key = \"{DEFAULT_KEY}\"\n"
        ),
    )
    .expect("owner settings");
    path
}

/// A booted, paired box and the fakes it talks to. Dropping it removes the test network.
pub struct PairedBox {
    pub vm: Vm,
    pub telegram: FakeTelegram,
    pub llm: FakeLlm,
    /// The fakes' runtime, for waiting on them.
    pub handle: tokio::runtime::Handle,
    /// The build's and the machine's folders, and the network: kept while the box runs.
    pub dirs: (tempfile::TempDir, tempfile::TempDir),
    pub net: TestNet,
}

/// Builds the default image (once a run: build_inputs.rs), boots it as machine `name`, lets a
/// stranger write twice and pairs the owner, who has had the one answer "Paired: ...".
pub fn boot_and_pair(name: &str) -> PairedBox {
    let net = TestNet::new(name);
    let (cert, key) = net.server_cert();
    let telegram_listener = net.listen_tcp(SocketAddr::new(TELEGRAM_HOST.parse().unwrap(), 443));
    let llm_listener = net.listen_tcp(SocketAddr::new(LLM_HOST.parse().unwrap(), 443));

    // The fakes run on a runtime thread of their own; the test waits on them with block_on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = runtime.handle().clone();
    let (telegram, llm) = runtime.block_on(async {
        let tls = || carapace_fakes::server::tls_acceptor(&cert, &key).expect("tls");
        let into_tokio = |listener: std::net::TcpListener| {
            listener.set_nonblocking(true).expect("nonblocking");
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let telegram = FakeTelegram::from_listener(into_tokio(telegram_listener), Some(tls()))
            .expect("fake telegram");
        let llm = FakeLlm::serve(into_tokio(llm_listener), Some(tls())).expect("fake llm");
        (telegram, llm)
    });
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));

    let build_dir = tempfile::tempdir().expect("tempdir");
    let recipe = recipe_with_test_ca(build_dir.path(), &net.ca_pem);
    let settings = carapace_image::owner::load(&owner_settings(build_dir.path()), &recipe)
        .unwrap_or_else(|e| panic!("owner settings: {e}"));
    let out = carapace_image::build::build(&recipe, &workspace())
        .unwrap_or_else(|e| panic!("building the default recipe with the test CA: {e}"));
    let pairing = carapace_image::owner::personalise(&out.image, &settings)
        .unwrap_or_else(|e| panic!("personalising: {e}"));
    let link = pairing.link.clone().expect("a telegram link");
    assert!(
        link.starts_with(&format!("https://t.me/{BOT_USERNAME}?start=")),
        "{link}"
    );

    let (machine_dir, mut config) = machine_of(&out.image, name);
    config.network = net.network();
    let mut vm = carapace_image::qemu::Vm::start(&config).expect("start QEMU");
    line_with(&mut vm, "carapace: firewall base policy loaded");
    line_with(
        &mut vm,
        "carapace-disk: owner settings moved from the ESP to /data/agentd",
    );
    line_with(&mut vm, "agentd: owner settings imported");
    let shown = line_with(&mut vm, "agentd: pairing link=");
    assert_eq!(shown, format!("agentd: pairing link={link}"));
    if vm.wait_for("carapace: ready", 0, BOOT_TIMEOUT).is_err() {
        fail(&vm, "no ready line");
    }

    // A stranger first: with no code, then with a wrong one. Neither gets an answer.
    telegram.inject_text(STRANGER, STRANGER, "Mallory", "hello, box");
    telegram.inject_text(STRANGER, STRANGER, "Mallory", "/start AAAAAAAAAAAAAAAA");

    let code = pairing.code.clone();
    telegram.inject_text(OWNER, OWNER, "Ann", &format!("/start {code}"));
    let sent = handle.block_on(telegram.wait_sent(1, WAIT));
    if sent.is_empty() {
        fail(&vm, "the owner got no answer to /start <code>");
    }
    assert_eq!(sent[0].chat_id, OWNER.to_string(), "{sent:?}");
    assert!(
        sent[0].text.starts_with("Paired: you are this box's owner"),
        "{sent:?}"
    );

    PairedBox {
        vm,
        telegram,
        llm,
        handle,
        dirs: (build_dir, machine_dir),
        net,
    }
}
