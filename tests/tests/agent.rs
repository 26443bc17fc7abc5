//! The agent end to end in QEMU: the default recipe (plus the test CA, so the box trusts the
//! fakes) built with owner settings by `carapace build --owner-settings`'s code, booted on a
//! private network whose DNS answers api.telegram.org and api.openai.com with the fakes'
//! addresses. The box must show the pairing link, ignore a stranger, pair the owner through
//! the deep link's `/start <code>`, and answer the owner through the LLM with a tool call, all
//! through netd's DNS stub and the firewall's allow sets; then keep two memories and recall
//! the right one by meaning through the box's own embedding model, without the LLM; answer a
//! voice note that holds no speech through the box's voice-activity model alone; answer a
//! spoken voice note with a spoken answer, the model getting only the words Whisper heard on
//! the box; answer a photo of a receipt, the model getting only the text PP-OCR read;
//! install a skill the owner sends as a zip and run its code in the skill host service; and add
//! a signed model pack from a link (the engine's tiny SmolVLM test checkpoint), after which a
//! photo is described on the box too.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use carapace_fakes::llm::{DEFAULT_KEY, FakeLlm, Script};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, SentKind, TOKEN};
use carapace_fakes::voice_note::normalised;
use common::{
    BOOT_TIMEOUT, RELEASE_RECIPE, fail, line_with, machine_of, power_off, workspace,
    write_release_variant,
};
use net::{GITHUB_HOST, LLM_HOST, LLM_NAME, TELEGRAM_HOST, TestNet};
use serde_json::json;

const OWNER: i64 = 4242;
const STRANGER: i64 = 6666;
const WAIT: Duration = Duration::from_secs(120);

/// The default recipe under another name, with the test CA added as a [[file]], and update
/// keys (the root's and a key list naming `signing`'s public key) that model packs are checked
/// with.
fn recipe_with_test_ca(dir: &Path, ca_pem: &str, signing: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(workspace().join(RELEASE_RECIPE)).expect("recipe");
    let renamed = text.replacen(
        "name = \"x86-64-qemu\"",
        "name = \"x86-64-qemu-agent-test\"",
        1,
    );
    assert_ne!(renamed, text, "the default recipe's name line moved");
    let root = dir.join("root.key");
    let root_public =
        carapace_image::keygen::keygen(&root, carapace_update::KeyKind::Root).expect("root key");
    carapace_image::keygen::sign_key_list(&carapace_image::keygen::KeyListRequest {
        root_secret: root,
        keys: vec![carapace_update::public_path_for(signing)],
        revoke: Vec::new(),
        not_after: Vec::new(),
        serial: 1,
        out: dir.join("keys.json"),
    })
    .expect("key list");
    let with_ca = format!(
        "{renamed}\n# The test CA, so the box trusts the fakes' certificates.\n[[file]]\npath = \"{}\"\ntext = '''\n{ca_pem}'''\n\n# Update keys, for the model pack the owner adds; no update service.\n[update]\nroot_key = \"{}\"\nkey_list = \"keys.json\"\nserver = \"https://updates.invalid/x86-64\"\n",
        carapace_http::EXTRA_CA_PATH,
        root_public.to_hex()
    );
    write_release_variant(dir, "x86-64-qemu-agent-test", &with_ca)
}

/// The engine's tiny SmolVLM test checkpoint as a model pack signed with `signing`, as the
/// tar `carapace models add --tar` writes.
fn tiny_vlm_pack_tar(dir: &Path, signing: &Path) -> Vec<u8> {
    let key = carapace_update::SecretKey::load(signing, carapace_update::KeyKind::Signing)
        .expect("signing key");
    let pack = carapace_models::make_pack(&carapace_models::PackRequest {
        model_dir: &workspace().join("infer/tests/data/vlm"),
        name: "tiny-smolvlm",
        version: "1.0.0",
        capability: "image_description",
        runs_on: carapace_models::RunsOn::Candle,
        key: &key,
        out_dir: dir,
    })
    .expect("the tiny SmolVLM as a pack")
    .dir;
    std::fs::read(carapace_models::write_pack_tar(&pack, dir).expect("its tar")).expect("its tar")
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
    let github_listener = net.listen_tcp(SocketAddr::new(GITHUB_HOST.parse().unwrap(), 443));
    let build_dir = tempfile::tempdir().expect("tempdir");
    let signing = build_dir.path().join("signing.key");
    carapace_image::keygen::keygen(&signing, carapace_update::KeyKind::Signing)
        .expect("signing key");
    // The fake GitHub's file host also serves a model pack's tar, for /add_model.
    let mut repository = tea_brewing_repository();
    repository.files.insert(
        "models/tiny-smolvlm-1.0.0.tar".into(),
        tiny_vlm_pack_tar(build_dir.path(), &signing),
    );

    // The fakes run on a runtime thread of their own; the test waits on them with block_on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = runtime.handle().clone();
    let (telegram, llm, github) = runtime.block_on(async {
        let tls = || carapace_fakes::server::tls_acceptor(&cert, &key).expect("tls");
        let into_tokio = |listener: std::net::TcpListener| {
            listener.set_nonblocking(true).expect("nonblocking");
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let telegram = FakeTelegram::from_listener(into_tokio(telegram_listener), Some(tls()))
            .expect("fake telegram");
        let llm = FakeLlm::serve(into_tokio(llm_listener), Some(tls())).expect("fake llm");
        let github = carapace_fakes::github::FakeGitHub::from_listener(
            into_tokio(github_listener),
            Some(tls()),
            repository,
            |_| "https://raw.githubusercontent.com".to_string(),
        )
        .expect("fake github");
        (telegram, llm, github)
    });
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));

    let recipe = recipe_with_test_ca(build_dir.path(), &net.ca_pem, &signing);
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
    // This machine has no TPM: the facts say /data is plain and why.
    assert!(
        content.contains("plain-no-tpm") && content.contains("this box has no TPM 2.0"),
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
    // at once, without Whisper and without the LLM.
    let noise = carapace_fakes::voice_note::noise_voice_note(4);
    telegram.inject_voice(OWNER, OWNER, "Ann", noise, 4);
    let sent = handle.block_on(telegram.wait_sent(7, WAIT));
    if sent.len() < 7 {
        fail(&vm, format!("no answer to a voice note: {sent:?}"));
    }
    assert_eq!(sent[6].text, "I heard no speech in that voice note.");
    assert_eq!(llm.requests().len(), 2, "a voice note went to the LLM");

    // A spoken voice note: Silero finds the speech, Whisper (on candle, in the engine) writes
    // it down, only the words go to the model, and the answer comes back spoken (Piper, encoded
    // as Ogg Opus on the box) and as text. Under TCG Whisper's 30 s window takes minutes.
    llm.push(Script::text("I will remind you tonight."));
    let note = carapace_fakes::voice_note::voice_note(SPOKEN);
    let asked = Instant::now();
    telegram.inject_voice(OWNER, OWNER, "Ann", note, 3);
    let sent = handle.block_on(telegram.wait_sent(9, PERCEPTION_WAIT));
    if sent.len() < 9 {
        fail(&vm, format!("no answer to a spoken voice note: {sent:?}"));
    }
    eprintln!(
        "agent: a spoken voice note answered in {:.0?}",
        asked.elapsed()
    );
    assert_eq!(sent[7].kind, SentKind::Voice, "{sent:?}");
    let seconds = ogg_seconds(&sent[7].bytes);
    assert!(
        (0.8..6.0).contains(&seconds),
        "the spoken answer lasts {seconds} s"
    );
    assert_eq!(sent[8].text, "I will remind you tonight.");
    let requests = llm.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let heard = user_text(&requests[2].body);
    let words = heard
        .strip_prefix("[a voice note, transcribed on the box] ")
        .unwrap_or_else(|| panic!("the model got {heard:?}"));
    // One word in nine may differ: TCG's floating point is not the host's, and the engine's
    // own tests bound Whisper's word error rate on the host.
    let errors = word_errors(&normalised(SPOKEN), &normalised(words));
    assert!(
        errors <= 1,
        "Whisper heard {words:?} ({errors} words wrong)"
    );
    // No audio went to the model: not the Ogg bytes, not their base64 ("OggS" is "T2dnUw").
    let body = requests[2].body.to_string();
    assert!(!body.contains("T2dnUw") && !body.contains("OggS"), "{body}");

    // A photo of a receipt: PP-OCR reads it on the box and only the text goes to the model.
    llm.push(Script::text("That was 348.50 euros at the bakery."));
    let asked = Instant::now();
    telegram.inject_photo(
        OWNER,
        OWNER,
        "Ann",
        carapace_fakes::page::receipt_photo(),
        "what did I spend?",
    );
    let sent = handle.block_on(telegram.wait_sent(10, PERCEPTION_WAIT));
    if sent.len() < 10 {
        fail(&vm, format!("no answer to a photo: {sent:?}"));
    }
    eprintln!("agent: a photo answered in {:.0?}", asked.elapsed());
    assert_eq!(sent[9].text, "That was 348.50 euros at the bakery.");
    let requests = llm.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    let seen = user_text(&requests[3].body);
    assert!(
        seen.starts_with("[a photo; the text in it, read on the box:")
            && seen.contains("Corner Bakery")
            && seen.contains(" 348.50 EUR")
            && seen.ends_with("] what did I spend?"),
        "the model got {seen:?}"
    );
    // No image went to the model: no JPEG bytes, not their base64 ("/9j/" starts a JPEG's).
    let body = requests[3].body.to_string();
    assert!(!body.contains("/9j/") && !body.contains("JFIF"), "{body}");

    // A skill the owner sends as a zip (JavaScript, built on this machine by `carapace skill
    // build`): installed once the owner saw what it declares, and its code run by the image's
    // skill host service (its own uid and cgroup; per call a process inside Landlock and
    // seccomp, in Debian's kernel), which compiles the component on the box right after the
    // install, in the background, so the first call does not wait for it.
    let skills = tempfile::tempdir().unwrap();
    let skill = skills.path().join("text-format");
    std::fs::create_dir_all(skill.join("scripts")).unwrap();
    for file in ["SKILL.md", "skill.toml", "scripts/tools.js"] {
        std::fs::copy(
            workspace().join("tests/skills/text-format").join(file),
            skill.join(file),
        )
        .unwrap();
    }
    carapace_image::skill_build::build(&skill, &workspace())
        .unwrap_or_else(|err| panic!("carapace skill build text-format: {err}"));
    let zipped = carapace_image::skill_zip::zip(&skill).unwrap();
    telegram.inject_document(OWNER, OWNER, "Ann", "text-format.zip", zipped, "");
    let sent = handle.block_on(telegram.wait_sent(11, WAIT));
    if sent.len() < 11 {
        fail(&vm, format!("no offer to install the skill: {sent:?}"));
    }
    assert!(
        sent[10].text.starts_with("Install skill text-format? "),
        "{}",
        sent[10].text
    );
    telegram.inject_button(OWNER, OWNER, "Ann", &sent[10].buttons[0].1);
    let sent = handle.block_on(telegram.wait_sent(12, WAIT));
    if sent.len() < 12 {
        fail(&vm, format!("no answer to Install: {sent:?}"));
    }
    assert!(
        sent[11].text.starts_with("Installed text-format."),
        "{}",
        sent[11].text
    );
    let installed = Instant::now();
    if let Err(err) = vm.wait_for(
        "agentd: skills: text-format's code was compiled for this box in ",
        0,
        SKILL_COMPILE_WAIT,
    ) {
        fail(&vm, format!("the skill's code was not compiled: {err}"));
    }
    eprintln!(
        "agent: the skill's component compiled on the box {:.0?} after the install",
        installed.elapsed()
    );
    llm.push(Script::tool(
        "text-format__title_case",
        json!({"text": "the lord of the rings"}),
    ));
    llm.push(Script::text("I asked you first."));
    telegram.inject_text(
        OWNER,
        OWNER,
        "Ann",
        "make it a title: the lord of the rings",
    );
    let sent = handle.block_on(telegram.wait_sent(14, WAIT));
    if sent.len() < 14 {
        fail(&vm, format!("no question about the skill's tool: {sent:?}"));
    }
    assert_eq!(sent[12].text, "I asked you first.");
    assert!(
        sent[13]
            .text
            .starts_with("Allow text-format__title_case to run?"),
        "{}",
        sent[13].text
    );
    llm.push(Script::text("The Lord of the Rings"));
    let asked = Instant::now();
    telegram.inject_button(OWNER, OWNER, "Ann", &sent[13].buttons[0].1);
    let sent = handle.block_on(telegram.wait_sent(15, WAIT));
    if sent.len() < 15 {
        fail(
            &vm,
            format!("no answer once the tool was allowed: {sent:?}"),
        );
    }
    eprintln!(
        "agent: the skill's first call (compiled already) answered in {:.0?}",
        asked.elapsed()
    );
    assert_eq!(sent[14].text, "The Lord of the Rings");
    let requests = llm.requests();
    let turn = requests
        .last()
        .map(|r| r.body.to_string())
        .unwrap_or_default();
    if !turn.contains("answered:\\nThe Lord of the Rings") {
        // The console says why: the skill host's lines, and the call's.
        fail(&vm, format!("the skill did not run: {turn}"));
    }
    // A skill from a GitHub folder link: the box asks netd to let it reach GitHub's API and
    // file host for the fetch (real DNS answers, real TLS with the test CA), lists the folder,
    // fetches each file, and takes both hosts back once it has them.
    let before = telegram.sent().len();
    telegram.inject_text(
        OWNER,
        OWNER,
        "Ann",
        "/install_skill https://github.com/acme/skills/tree/main/skills/tea-brewing",
    );
    let sent = handle.block_on(telegram.wait_sent(before + 1, WAIT));
    let offer = sent.get(before).cloned();
    let Some(offer) = offer.filter(|o| o.text.starts_with("Install skill tea-brewing? ")) else {
        fail(&vm, format!("no offer of the linked skill: {sent:?}"));
    };
    telegram.inject_button(OWNER, OWNER, "Ann", &offer.buttons[0].1);
    let sent = handle.block_on(telegram.wait_sent(before + 2, WAIT));
    if sent.get(before + 1).map(|m| m.text.as_str()) != Some("Installed tea-brewing.") {
        fail(&vm, format!("the linked skill was not installed: {sent:?}"));
    }
    let asked = github.requests();
    assert!(
        asked.contains(&"/repos/acme/skills/contents/skills/tea-brewing?ref=main".to_string())
            && asked.contains(&"/acme/skills/main/skills/tea-brewing/steeping.md".to_string()),
        "{asked:?}"
    );
    for name in ["api.github.com", "raw.githubusercontent.com"] {
        for verb in ["allowed", "took back"] {
            let line = format!("netd: config: the owner {verb} {name} port 443");
            if let Err(err) = vm.wait_for(&line, 0, WAIT) {
                fail(&vm, format!("netd never {verb} {name}: {err}"));
            }
        }
    }

    // A model pack from a link: agentd downloads it in the background (netd lets it reach the
    // file host for the download only) and streams it into the engine, which checks it with the
    // image's update keys and keeps it on /data; from then on photos are described on the box.
    let before = telegram.sent().len();
    telegram.inject_text(
        OWNER,
        OWNER,
        "Ann",
        "/add_model https://raw.githubusercontent.com/acme/skills/main/models/tiny-smolvlm-1.0.0.tar",
    );
    let sent = handle.block_on(telegram.wait_sent(before + 2, PERCEPTION_WAIT));
    let added = sent
        .get(before + 1)
        .map(|m| m.text.clone())
        .unwrap_or_default();
    if !added.starts_with("Added the model tiny-smolvlm 1.0.0: image description, signed by key ") {
        fail(&vm, format!("the model pack was not added: {sent:?}"));
    }
    line_with(
        &mut vm,
        "infer: carapace-infer: added model pack tiny-smolvlm 1.0.0 (image_description, signed by key ",
    );
    // A small picture: the engine's tiny model describes it (in the words of random weights),
    // and PP-OCR reads what it may.
    let picture =
        std::fs::read(workspace().join("infer/tests/data/vlm/image.png")).expect("picture");
    llm.push(Script::text("A small picture."));
    telegram.inject_photo(OWNER, OWNER, "Ann", picture, "what is this?");
    let sent = handle.block_on(telegram.wait_sent(before + 3, PERCEPTION_WAIT));
    if sent.get(before + 2).map(|m| m.text.as_str()) != Some("A small picture.") {
        fail(&vm, format!("no answer to the described photo: {sent:?}"));
    }
    let requests = llm.requests();
    let seen = requests
        .last()
        .map(|r| user_text(&r.body))
        .unwrap_or_default();
    assert!(
        seen.starts_with("[a photo; what the box sees in it: ")
            && seen.ends_with("] what is this?"),
        "the model got {seen:?}"
    );

    let console = vm.console();
    for wanted in [
        "skillhost: listening on /run/skillhost/calls.sock for uid 1000",
        // Its own uid, and no capability.
        "carapace: service skillhost creds uid=1007 gid=1007 cap_eff=0000000000000000 ",
    ] {
        assert!(
            console.iter().any(|l| l.starts_with(wanted)),
            "{wanted:?} not in {console:?}"
        );
    }

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

/// A repository with the example tea-brewing skill (and a note of its own) under
/// skills/tea-brewing, for the fake GitHub.
fn tea_brewing_repository() -> carapace_fakes::github::Repository {
    let mut files = std::collections::BTreeMap::new();
    for file in ["SKILL.md", "steeping.md"] {
        let bytes = std::fs::read(workspace().join("tests/skills/tea-brewing").join(file))
            .expect("the example skill");
        files.insert(format!("skills/tea-brewing/{file}"), bytes);
    }
    files.insert(
        "skills/tea-brewing/notes/green.md".into(),
        b"Sencha: 70 C.\n".to_vec(),
    );
    carapace_fakes::github::Repository {
        owner: "acme".into(),
        repo: "skills".into(),
        reference: "main".into(),
        files,
    }
}

/// A voice note's words as the owner spoke them (the fake LLM's transcript check).
const SPOKEN: &str = "Please send the report to my brother tonight.";
/// Whisper, Piper and PP-OCR under TCG: minutes each, as fast as the host's floating point (a
/// spoken note took 643 s and a photo 265 s on a 2.4 GHz EPYC, the note 215 s on a faster
/// host): about three times the slowest seen.
const PERCEPTION_WAIT: Duration = Duration::from_secs(1800);
/// Compiling a skill's component on the box: 3 to 7 minutes under TCG for the JavaScript
/// example (StarlingMonkey inside), beside the other lane's work.
const SKILL_COMPILE_WAIT: Duration = Duration::from_secs(18 * 60);

/// The text of the last user message in an OpenAI chat-completions request.
fn user_text(body: &serde_json::Value) -> String {
    let last = body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .unwrap_or_else(|| panic!("no user message in {body}"));
    match &last["content"] {
        serde_json::Value::String(text) => text.clone(),
        parts => parts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect(),
    }
}

/// Word-level Levenshtein distance.
fn word_errors(reference: &str, heard: &str) -> usize {
    let reference: Vec<&str> = reference.split(' ').collect();
    let heard: Vec<&str> = heard.split(' ').collect();
    let mut previous: Vec<usize> = (0..=heard.len()).collect();
    for (i, want) in reference.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, got) in heard.iter().enumerate() {
            let substitution = previous[j] + usize::from(want != got);
            row.push(substitution.min(previous[j + 1] + 1).min(row[j] + 1));
        }
        previous = row;
    }
    previous[heard.len()]
}

/// How long an Ogg Opus stream plays: its last page's granule position (48 kHz samples, pre-skip
/// left in, a few milliseconds). Panics on bytes that are not Ogg.
fn ogg_seconds(ogg: &[u8]) -> f64 {
    assert!(
        ogg.starts_with(b"OggS"),
        "not Ogg: {:?}",
        &ogg[..ogg.len().min(8)]
    );
    let last_page = ogg
        .windows(4)
        .rposition(|w| w == b"OggS")
        .expect("an Ogg page");
    let granule: [u8; 8] = ogg[last_page + 6..last_page + 14]
        .try_into()
        .expect("a page header");
    u64::from_le_bytes(granule) as f64 / 48_000.0
}
