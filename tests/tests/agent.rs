//! The agent end to end in QEMU: the default recipe (plus the test CA, so the box trusts the
//! fakes) built with owner settings by `carapace build --owner-settings`'s code, booted on a
//! private network whose DNS answers api.telegram.org and api.openai.com with the fakes'
//! addresses. The box must show the pairing link, ignore a stranger, pair the owner through
//! the deep link's `/start <code>`, and answer the owner through the LLM with a tool call, all
//! through netd's DNS stub and the firewall's allow sets; then keep two memories and recall
//! the right one by meaning through the box's own embedding model, without the LLM; and
//! answer a voice note that holds no speech through the box's voice-activity model.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use carapace_fakes::llm::{DEFAULT_KEY, FakeLlm, Script};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, TOKEN};
use common::{
    BOOT_TIMEOUT, RELEASE_RECIPE, fail, line_with, machine_of, power_off, workspace,
    write_release_variant,
};
use net::{LLM_HOST, LLM_NAME, TELEGRAM_HOST, TestNet};
use serde_json::json;

const OWNER: i64 = 4242;
const STRANGER: i64 = 6666;
const WAIT: Duration = Duration::from_secs(120);

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

#[test]
fn the_default_image_pairs_over_telegram_and_answers_its_owner() {
    let net = TestNet::new("agent");
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

    let (_dir, mut config) = machine_of(&out.image, "agent");
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

    // The owner asks; the model calls a tool; its answer comes back.
    llm.push(Script::tool("device_status", json!({})));
    llm.push(Script::text("Your box is fine."));
    telegram.inject_text(OWNER, OWNER, "Ann", "how is my box?");
    let sent = handle.block_on(telegram.wait_sent(2, WAIT));
    if sent.len() < 2 {
        fail(&vm, format!("no answer through the LLM: {sent:?}"));
    }
    assert_eq!(sent[1].text, "Your box is fine.", "{sent:?}");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|r| r.key_ok));
    let tool_result = requests[1].body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .cloned()
        .unwrap_or_else(|| panic!("no tool result in {}", requests[1].body));
    let content = tool_result["content"].as_str().unwrap_or_default();
    assert!(
        content.contains("\"slot\"") && content.contains("ed25519:"),
        "{content}"
    );

    // /logs needs no model: the logger hands agentd the box's last lines.
    telegram.inject_text(OWNER, OWNER, "Ann", "/logs");
    let sent = handle.block_on(telegram.wait_sent(3, WAIT));
    if sent.len() < 3 {
        fail(&vm, format!("no answer to /logs: {sent:?}"));
    }
    assert!(
        sent[2]
            .text
            .contains("agentd: pairing: telegram 4242 is now the owner"),
        "{}",
        sent[2].text
    );

    // "Remember this", then recall by meaning: the box's own embedding model (the infer
    // service, loopback only) ranks the memories; no LLM call, nothing leaves the box.
    let notes = [
        "the spare key is under the blue flowerpot",
        "the wifi router is in the hallway closet",
    ];
    for (i, note) in notes.iter().enumerate() {
        telegram.inject_text(OWNER, OWNER, "Ann", &format!("/remember {note}"));
        let sent = handle.block_on(telegram.wait_sent(4 + i, WAIT));
        if sent.len() < 4 + i {
            fail(&vm, format!("no answer to /remember: {sent:?}"));
        }
        // Embedded at once: not "Remembered (memory N). It will be searchable once ...".
        let answer = &sent[3 + i].text;
        assert!(
            answer.starts_with("Remembered (memory ")
                && answer.ends_with(").")
                && answer.len() < 32,
            "the engine did not embed the memory: {answer}"
        );
    }
    telegram.inject_text(OWNER, OWNER, "Ann", "/recall where did I leave the key");
    let sent = handle.block_on(telegram.wait_sent(6, WAIT));
    if sent.len() < 6 {
        fail(&vm, format!("no answer to /recall: {sent:?}"));
    }
    let mut recalled = sent[5].text.lines();
    assert_eq!(recalled.next(), Some("From memory:"), "{}", sent[5].text);
    let best = recalled.next().unwrap_or_default();
    assert!(
        best.ends_with(". the spare key is under the blue flowerpot"),
        "the best match is not the key: {}",
        sent[5].text
    );
    assert_eq!(llm.requests().len(), 2, "memories went to the LLM");

    // A voice note of hiss: the engine's voice-activity model (Silero, on ONNX Runtime, which
    // the dynamically linked engine loads from the image) finds no speech, so agentd answers
    // at once, without Whisper (minutes a window under emulation) and without the LLM.
    let noise = carapace_fakes::voice_note::noise_voice_note(4);
    telegram.inject_voice(OWNER, OWNER, "Ann", noise, 4);
    let sent = handle.block_on(telegram.wait_sent(7, WAIT));
    if sent.len() < 7 {
        fail(&vm, format!("no answer to a voice note: {sent:?}"));
    }
    assert_eq!(sent[6].text, "I heard no speech in that voice note.");
    assert_eq!(llm.requests().len(), 2, "a voice note went to the LLM");

    // The engine ran as its own service, on the models the image carries.
    assert!(
        vm.console()
            .iter()
            .any(|l| l == "infer: carapace-infer: listening on http://127.0.0.1:8089"),
        "{:?}",
        vm.console()
    );

    // Nothing ever went to the stranger, and the model never saw their words.
    assert!(
        telegram
            .sent()
            .iter()
            .all(|m| m.chat_id != STRANGER.to_string()),
        "{:?}",
        telegram.sent()
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.body.to_string().contains("hello, box"))
    );
    // The screen (tty1, handed to agentd by PID 1) took the QR code without complaint.
    assert!(
        !vm.console()
            .iter()
            .any(|l| l.starts_with("agentd: screen:")),
        "{:?}",
        vm.console()
    );
    power_off(&mut vm);
}
