//! Updates over the air, end to end in QEMU: the default recipe with an update source (a
//! repository on a static HTTPS server in the test's network namespace, built and published
//! with `carapace bundle` and `publish`'s code), paired with its owner over the fake Telegram.
//! The owner drives it from the chat, as a user would:
//!
//! 1. a repository whose chunks were tampered with: refused, nothing written;
//! 2. a link that drops mid-chunk: refused as truncated; the next try resumes the chunk with a
//!    range request;
//! 3. 0.1.0 (slot a) → 0.1.1 (slot b), committed once agentd passed its self-test and its
//!    Telegram link is back; then back to slot a (forced, same version), committed;
//! 4. 0.1.2, whose agentd cannot start (its memory limit is below what it needs): the trial
//!    boot rolls back by itself, and the box is on slot a again, told to the owner.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_fakes::llm::{DEFAULT_KEY, FakeLlm};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, TOKEN};
use carapace_fakes::update_server::UpdateServer;
use carapace_image::bundle::{BundleOptions, bundle};
use carapace_image::keygen::{KeyListRequest, keygen, sign_key_list};
use carapace_image::publish::{PublishOptions, publish};
use carapace_image::qemu::Vm;
use carapace_update::KeyKind;
use common::{BOOT_TIMEOUT, RELEASE_RECIPE, fail, line_with, machine_of, power_off, workspace};
use net::{LLM_HOST, LLM_NAME, TELEGRAM_HOST, TestNet, UPDATE_HOST, UPDATE_NAME};

const OWNER: i64 = 4242;
const WAIT: Duration = Duration::from_secs(180);
/// From /update reboot (or the start of a bad slot) to the ready line of the slot that ends
/// up running: a trial boot that rolls back waits for agentd's report up to 180 s first.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(600);

struct Keys {
    root_hex: String,
    signing: PathBuf,
    key_list: PathBuf,
}

fn make_keys(dir: &Path) -> Keys {
    let root = dir.join("root.key");
    let root_public = keygen(&root, KeyKind::Root).expect("root key");
    let signing = dir.join("signing.key");
    keygen(&signing, KeyKind::Signing).expect("signing key");
    let key_list = dir.join("keys.json");
    sign_key_list(&KeyListRequest {
        root_secret: root,
        keys: vec![carapace_update::public_path_for(&signing)],
        revoke: Vec::new(),
        not_after: Vec::new(),
        serial: 1,
        out: key_list.clone(),
    })
    .expect("key list");
    Keys {
        root_hex: root_public.to_hex(),
        signing,
        key_list,
    }
}

/// The default recipe as `name` at `version`, trusting the test CA, following the test's
/// repository, with the update service in its table. `agentd_memory` replaces agentd's limit.
fn recipe(
    dir: &Path,
    name: &str,
    version: &str,
    ca_pem: &str,
    keys: &Keys,
    agentd_memory: Option<u64>,
) -> PathBuf {
    let recipes = workspace().join("recipes");
    let text = std::fs::read_to_string(workspace().join(RELEASE_RECIPE)).expect("recipe");
    let mut text = text.replacen(
        "name = \"x86-64-qemu\"",
        &format!("name = \"{name}\"\nversion = \"{version}\""),
        1,
    );
    assert!(
        text.contains(&format!("version = \"{version}\"")),
        "the default recipe's name line moved"
    );
    if let Some(bytes) = agentd_memory {
        let limited = text.replacen(
            "memory_max = 268435456",
            &format!("memory_max = {bytes}"),
            1,
        );
        assert_ne!(limited, text, "agentd's memory_max line moved");
        text = limited;
    }
    text.push_str(&format!(
        r#"
# The test CA, so the box trusts the fakes' certificates.
[[file]]
path = "{ca_path}"
text = '''
{ca_pem}'''

[update]
root_key = "{root}"
key_list = "keys.json"
server = "https://{UPDATE_NAME}/x86-64"

[[binary]]
package = "carapace-updated"
bin = "updated"

# The update service: the only uid that may write the other slot and the boot entries
# (boot_control); agentd (uid 1000) asks it over its control socket.
[[service]]
name = "updated"
exec = ["/usr/bin/updated", "--controller", "1000"]
uid = 1005
gid = 1005
memory_max = 67108864
network = "egress"
after = ["netd"]
ready = true
state_dir = true
runtime_dir = true
reboot = true
boot_control = true
"#,
        ca_path = carapace_http::EXTRA_CA_PATH,
        root = keys.root_hex,
    ));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write recipe");
    std::fs::copy(
        recipes.join("x86-64-qemu.lock"),
        dir.join(format!("{name}.lock")),
    )
    .expect("lock");
    std::fs::copy(&keys.key_list, dir.join("keys.json")).expect("key list");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    for entry in std::fs::read_dir(recipes.join("files")).expect("recipe files") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), files.join(entry.file_name())).expect("copy file");
    }
    path
}

fn owner_settings(dir: &Path) -> PathBuf {
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

/// Builds `recipe`'s bundle and publishes it to `site`'s stable channel, to the whole fleet.
fn bundle_and_publish(recipe: &Path, keys: &Keys, site: &Path) {
    let report = bundle(
        recipe,
        &workspace(),
        &BundleOptions {
            key: keys.signing.clone(),
            min_from: None,
            build: true,
            locked: false,
        },
    )
    .unwrap_or_else(|e| panic!("bundle {}: {e}", recipe.display()));
    publish(&PublishOptions {
        bundle: report.dir,
        to: site.to_owned(),
        channel: "stable".into(),
        rollout: "1".into(),
        key: keys.signing.clone(),
        key_list: Some(keys.key_list.clone()),
    })
    .unwrap_or_else(|e| panic!("publish: {e}"));
}

/// The owner's chat, seen from the test.
struct Chat<'a> {
    telegram: &'a FakeTelegram,
    handle: &'a tokio::runtime::Handle,
}

impl Chat<'_> {
    fn send(&self, text: &str) {
        self.telegram.inject_text(OWNER, OWNER, "Ann", text);
    }

    /// The first message to the owner, from the `from`th on, that contains `needle`.
    fn wait_for(&self, vm: &Vm, from: usize, needle: &str, timeout: Duration) -> (usize, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let sent = self.telegram.sent();
            if let Some((at, message)) = sent
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, m)| m.chat_id == OWNER.to_string() && m.text.contains(needle))
            {
                return (at, message.text.clone());
            }
            if std::time::Instant::now() >= deadline {
                let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
                fail(
                    vm,
                    format!("the owner was never told '{needle}'; the chat: {texts:#?}"),
                );
            }
            self.handle.block_on(
                self.telegram
                    .wait_sent(sent.len() + 1, Duration::from_secs(5)),
            );
        }
    }
}

/// The console line index of the first line starting with `needle` after `from`.
fn console_line(vm: &mut Vm, from: usize, needle: &str, timeout: Duration) -> usize {
    match vm.wait_for(needle, from, timeout) {
        Ok((at, _)) => at,
        Err(e) => fail(vm, e),
    }
}

#[test]
fn the_owner_updates_to_slot_b_and_back_to_a_and_a_bad_update_rolls_back_by_itself() {
    let net = TestNet::new("update");
    let (cert, key) = net.server_cert();
    let telegram_listener = net.listen_tcp(SocketAddr::new(TELEGRAM_HOST.parse().unwrap(), 443));
    let llm_listener = net.listen_tcp(SocketAddr::new(LLM_HOST.parse().unwrap(), 443));
    let update_listener = net.listen_tcp(SocketAddr::new(UPDATE_HOST.parse().unwrap(), 443));
    let build_dir = tempfile::tempdir().expect("tempdir");
    let site = build_dir.path().join("site");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = runtime.handle().clone();
    let (telegram, _llm, server) = runtime.block_on(async {
        let tls = || carapace_fakes::server::tls_acceptor(&cert, &key).expect("tls");
        let into_tokio = |listener: std::net::TcpListener| {
            listener.set_nonblocking(true).expect("nonblocking");
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let telegram = FakeTelegram::from_listener(into_tokio(telegram_listener), Some(tls()))
            .expect("fake telegram");
        let llm = FakeLlm::serve(into_tokio(llm_listener), Some(tls())).expect("fake llm");
        let server = UpdateServer::serve(update_listener, Some(tls()), site.join("x86-64"))
            .expect("update server");
        (telegram, llm, server)
    });
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    let chat = Chat {
        telegram: &telegram,
        handle: &handle,
    };

    let keys = make_keys(build_dir.path());
    let recipe_a = recipe(
        build_dir.path(),
        "update-a",
        "0.1.0",
        &net.ca_pem,
        &keys,
        None,
    );
    let recipe_b = recipe(
        build_dir.path(),
        "update-b",
        "0.1.1",
        &net.ca_pem,
        &keys,
        None,
    );
    let recipe_bad = recipe(
        build_dir.path(),
        "update-bad",
        "0.1.2",
        &net.ca_pem,
        &keys,
        Some(4 * 1024 * 1024),
    );
    let settings = carapace_image::owner::load(&owner_settings(build_dir.path()), &recipe_a)
        .unwrap_or_else(|e| panic!("owner settings: {e}"));
    let out = carapace_image::build::build(&recipe_a, &workspace())
        .unwrap_or_else(|e| panic!("building 0.1.0: {e}"));
    let pairing = carapace_image::owner::personalise(&out.image, &settings)
        .unwrap_or_else(|e| panic!("personalising: {e}"));
    bundle_and_publish(&recipe_b, &keys, &site.join("x86-64"));

    let (_machine, mut config) = machine_of(&out.image, "update");
    config.network = net.network();
    let mut vm = Vm::start(&config).expect("start QEMU");
    console_line(&mut vm, 0, "carapace: ready slot=a", BOOT_TIMEOUT);
    console_line(
        &mut vm,
        0,
        "updated: update: x86-64 0.1.0 slot a follows",
        BOOT_TIMEOUT,
    );
    chat.send(&format!("/start {}", pairing.code));
    chat.wait_for(&vm, 0, "Paired: you are this box's owner", WAIT);

    let (seen, text) = {
        chat.send("/update");
        chat.wait_for(&vm, 0, "0.1.1 is available", WAIT)
    };
    assert!(text.contains("this box runs 0.1.0"), "{text}");

    // 1. Tampered chunks: refused before a byte is written; the box stays on slot a.
    let chunks = site.join("x86-64/chunks");
    let originals: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&chunks)
        .expect("chunks")
        .map(|entry| {
            let path = entry.expect("chunk").path();
            let bytes = std::fs::read(&path).expect("chunk bytes");
            (path, bytes)
        })
        .collect();
    for (path, bytes) in &originals {
        let mut tampered = bytes.clone();
        tampered[bytes.len() / 2] ^= 0x55;
        std::fs::write(path, tampered).expect("tamper");
    }
    chat.send("/update install");
    let (seen, refused) = chat.wait_for(&vm, seen + 1, "Installing 0.1.1 failed:", WAIT);
    assert!(refused.contains("hash"), "{refused}");
    assert!(
        refused.contains("The running slot a is untouched"),
        "{refused}"
    );
    for (path, bytes) in &originals {
        std::fs::write(path, bytes).expect("restore");
    }

    // 2. The link drops after 10 000 bytes of a chunk: refused as truncated; the next try
    //    continues that chunk from its 10 000th byte.
    server.cut_chunks_at(10_000);
    chat.send("/update install");
    let (seen, truncated) = chat.wait_for(&vm, seen + 1, "Installing 0.1.1 failed:", WAIT);
    assert!(truncated.contains("truncated"), "{truncated}");
    server.cut_chunks_at(0);
    let sent_before = server.bytes_sent();
    chat.send("/update install");
    let (seen, downloading) = chat.wait_for(&vm, seen + 1, "Downloading 0.1.1:", WAIT);
    let (seen, written) = chat.wait_for(&vm, seen, "0.1.1 is written to slot b", WAIT);
    assert!(written.contains("/update reboot"), "{written}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.ends_with("range=10000-")),
        "the interrupted chunk was not resumed: {:?}",
        server.requests()
    );
    println!(
        "update 0.1.0 -> 0.1.1: {downloading:?}; {} bytes sent by the server for it",
        server.bytes_sent() - sent_before
    );

    // 3. Into slot b, committed once agentd is healthy and the chat link is back.
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let at = console_line(
        &mut vm,
        before_reboot,
        "carapace: ready slot=b",
        SWITCH_TIMEOUT,
    );
    console_line(
        &mut vm,
        at,
        "updated: update: committed slot=b version=0.1.1",
        WAIT,
    );
    let (seen, committed) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot b)", WAIT);
    assert!(committed.contains("chat link is back"), "{committed}");

    // Back to slot a: the same version, forced; every chunk is already on the box.
    let sent_before = server.bytes_sent();
    chat.send("/update install force");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.1 is written to slot a", WAIT);
    let chunk_bytes = server.bytes_sent() - sent_before;
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let at = console_line(
        &mut vm,
        before_reboot,
        "carapace: ready slot=a",
        SWITCH_TIMEOUT,
    );
    console_line(
        &mut vm,
        at,
        "updated: update: committed slot=a version=0.1.1",
        WAIT,
    );
    let (seen, _) = chat.wait_for(&vm, seen, "Updated to 0.1.1 (slot a)", WAIT);
    println!("back to slot a: {chunk_bytes} bytes from the server");

    // 4. A bad update: its agentd never comes up, so the trial is never committed; the box
    //    goes back to slot a by itself and says so.
    bundle_and_publish(&recipe_bad, &keys, &site.join("x86-64"));
    chat.send("/update install");
    let (seen, _) = chat.wait_for(&vm, seen + 1, "0.1.2 is written to slot b", WAIT);
    let before_reboot = vm.console().len();
    chat.send("/update reboot");
    let trial = console_line(
        &mut vm,
        before_reboot,
        "carapace: stage1 start",
        SWITCH_TIMEOUT,
    );
    let back = console_line(&mut vm, trial, "carapace: ready slot=a", SWITCH_TIMEOUT);
    let console = vm.console();
    assert!(
        console[trial..back]
            .iter()
            .any(|l| l.starts_with("updated: update: trial boot 1 of 0.1.2 in slot b")),
        "slot b never booted its trial:\n{}",
        console[trial..back].join("\n")
    );
    let (_, rolled_back) = chat.wait_for(&vm, seen, "0.1.2", SWITCH_TIMEOUT);
    assert!(
        rolled_back.contains("failed its trial") || rolled_back.contains("ran out of boot tries"),
        "{rolled_back}"
    );
    assert!(
        !vm.console()
            .iter()
            .any(|l| l.starts_with("updated: update: committed slot=b version=0.1.2")),
        "the bad slot was committed"
    );
    power_off(&mut vm);
}
