//! What the update tests share: signing keys, recipes that follow a test repository, the
//! fakes (Telegram, the LLM API, a static HTTPS update server) on the test's private network,
//! building, bundling and publishing, and the owner's chat.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_fakes::llm::{DEFAULT_KEY, FakeLlm};
use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, TOKEN};
use carapace_fakes::update_server::UpdateServer;
use carapace_image::bundle::{BundleOptions, bundle};
use carapace_image::keygen::{KeyListRequest, keygen, sign_key_list};
use carapace_image::publish::{PublishOptions, publish};
use carapace_image::qemu::{Vm, VmConfig};
use carapace_update::KeyKind;

use super::common::{
    BOOT_TIMEOUT, RELEASE_RECIPE, fail, machine_of, workspace, write_release_variant, write_variant,
};
use super::net::{LLM_HOST, LLM_NAME, TELEGRAM_HOST, TestNet, UPDATE_HOST, UPDATE_NAME};

pub const OWNER: i64 = 4242;
/// One answer or one step of an update (a check, a download, a slot write).
pub const WAIT: Duration = Duration::from_secs(180);
/// From /update reboot (or the start of a bad slot) to the ready line of the slot that ends
/// up running: a trial boot that rolls back waits for agentd's report up to 180 s first.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(600);
/// The test images' trial stability window (`trial_stable_s`): the shortest the builder takes
/// (the hardware watchdog's 20 s and a margin), so each commit costs as little as it can.
pub const TRIAL_STABLE_S: u32 = board_support::update_config::MIN_TRIAL_STABLE_S;
/// What updated says once per boot, after its `follows` line: the booted slot is committed, or
/// this boot is a trial (judged now).
pub const COMMITTED_BOOT: &str = "updated: update: slot ";
pub const TRIAL_BOOT: &str = "updated: update: trial boot ";

/// What every update test starts from: its private network with the fakes on it (the update
/// server serves `site`), a build folder for recipes and releases, and signing keys. The fakes
/// go first when it is dropped, the network last.
pub struct Lab {
    pub fakes: Fakes,
    pub keys: Keys,
    pub site: PathBuf,
    build_dir: tempfile::TempDir,
    pub net: TestNet,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
        let net = TestNet::new(name);
        let build_dir = tempfile::tempdir().expect("tempdir");
        let site = build_dir.path().join("site");
        let fakes = Fakes::start(&net, &site);
        let keys_dir = build_dir.path().join("keys");
        std::fs::create_dir(&keys_dir).expect("keys dir");
        let keys = make_keys(&keys_dir);
        Lab {
            fakes,
            keys,
            site,
            build_dir,
            net,
        }
    }

    /// The build folder.
    pub fn dir(&self) -> &Path {
        self.build_dir.path()
    }
}

pub struct Keys {
    pub root_hex: String,
    pub signing: PathBuf,
    pub key_list: PathBuf,
}

pub fn make_keys(dir: &Path) -> Keys {
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
/// repository, with the update service in its table. `broken_agentd` leaves agentd's runtime
/// directory out of the table (a broken release: agentd exits at start and crash-loops);
/// `update_extra` is more lines for `[update]` (a download cap).
/// The default recipe without the inference engine (its binary, its 83 MB model, its
/// service): updates move slots, not models, and a slot a third the size is written in a third
/// of the time under TCG. The agent test boots the engine.
fn without_inference_engine(text: &str) -> String {
    const BEGIN: &str = "# --- the local inference engine";
    const END: &str = "# --- end of the local inference engine ---\n";
    let begin = text
        .find(BEGIN)
        .expect("the default recipe's engine begin line moved");
    let end = text[begin..]
        .find(END)
        .map(|at| begin + at + END.len())
        .expect("the default recipe's engine end line moved");
    let cut = format!("{}{}", &text[..begin], &text[end..]);
    assert!(
        !cut.contains("carapace-infer"),
        "the engine is outside its lines"
    );
    cut
}

pub fn recipe(
    dir: &Path,
    name: &str,
    version: &str,
    ca_pem: &str,
    keys: &Keys,
    broken_agentd: bool,
    update_extra: &str,
) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join(RELEASE_RECIPE)).expect("recipe");
    let text = without_inference_engine(&text);
    let mut text = text.replacen(
        "name = \"x86-64-qemu\"",
        &format!("name = \"{name}\"\nversion = \"{version}\""),
        1,
    );
    assert!(
        text.contains(&format!("version = \"{version}\"")),
        "the default recipe's name line moved"
    );
    if broken_agentd {
        let agentd_dirs = "runtime_dir = true\n# The owner settings";
        let broken = text.replacen(agentd_dirs, "# The owner settings", 1);
        assert_ne!(broken, text, "agentd's runtime_dir line moved");
        text = broken;
    }
    text.push_str(&update_sections(ca_pem, keys, "x86-64", update_extra));
    std::fs::copy(&keys.key_list, dir.join("keys.json")).expect("key list");
    write_release_variant(dir, name, &text)
}

/// recipes/pi5.toml as `name` at `version`, with what `recipe` adds, and the drivers of QEMU's
/// virt machine that the test needs besides the board's (its network card and watchdog).
pub fn pi_recipe(dir: &Path, name: &str, version: &str, ca_pem: &str, keys: &Keys) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("recipes/pi5.toml")).expect("recipe");
    let mut text = text.replacen(
        "name = \"pi5\"",
        &format!("name = \"{name}\"\nversion = \"{version}\""),
        1,
    );
    let with_virt = text.replacen(
        "\"bcm2835_wdt\",",
        "\"bcm2835_wdt\", \"i6300esb\", \"virtio_net\",",
        1,
    );
    assert_ne!(
        with_virt, text,
        "the Pi recipe's watchdog module line moved"
    );
    text = with_virt;
    text.push_str(&update_sections(ca_pem, keys, "pi5", ""));
    std::fs::copy(&keys.key_list, dir.join("keys.json")).expect("key list");
    write_variant(dir, "pi5", name, &text)
}

/// The boxes' quiet hour (the UTC hour at which a written update restarts the box by itself):
/// twelve hours from when this test process first wrote a release. The tests restart their boxes when they
/// say so; with the default (03:00), a run that wrote an update between 03:00 and 04:00 saw the
/// box restart into it on its own before the test's `/update reboot` (2026-12-05: the update
/// test then waited 600 s for a boot that had come already). The boxes' clock is the host's
/// plus a day (net.rs), the same hour. Once per process, so that the releases agree.
fn quiet_hour_away_from_now() -> u64 {
    static HOUR: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HOUR.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the host's clock is after 1970");
        (now.as_secs() / 3600 + 12) % 24
    })
}

/// The test CA, `[update]` following the test repository's `board_dir`, and the update
/// service in the table.
fn update_sections(ca_pem: &str, keys: &Keys, board_dir: &str, update_extra: &str) -> String {
    format!(
        r#"
# The test CA, so the box trusts the fakes' certificates.
[[file]]
path = "{ca_path}"
text = '''
{ca_pem}'''

[update]
root_key = "{root}"
key_list = "keys.json"
server = "https://{UPDATE_NAME}/{board_dir}"
trial_stable_s = {TRIAL_STABLE_S}
quiet_hour = {quiet_hour}
{update_extra}

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
        quiet_hour = quiet_hour_away_from_now(),
    )
}

/// An instruction-only skill `name` (SKILL.md and a note) packed as `version`, signed with the
/// lab's signing key, in `dir`: the pack's zip.
pub fn signed_skill_pack(dir: &Path, keys: &Keys, name: &str, version: &str) -> PathBuf {
    let source = dir.join("skill-sources").join(name);
    std::fs::create_dir_all(&source).expect("skill folder");
    std::fs::write(
        source.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: How to use the {name}.\n---\nRead notes.md.\n"),
    )
    .expect("SKILL.md");
    std::fs::write(source.join("notes.md"), "Fill it, switch it on, wait.\n").expect("notes");
    let key =
        carapace_update::SecretKey::load(&keys.signing, KeyKind::Signing).expect("signing key");
    carapace_image::skill_pack::make(&source, version, &key, dir)
        .unwrap_or_else(|e| panic!("carapace skill pack {name}: {e}"))
}

pub fn owner_settings(dir: &Path) -> PathBuf {
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
pub fn bundle_and_publish(recipe: &Path, keys: &Keys, site: &Path) {
    bundle_and_publish_patched(recipe, keys, site, &[]);
}

/// Copies the slot directory of `recipe`'s last build to `dir`, as a release engineer keeps
/// each release's (the next build replaces out/<recipe>/slot), for `--patch-from`.
pub fn keep_slot(recipe: &Path, dir: &Path) -> PathBuf {
    let (loaded, _) = carapace_image::recipe::Recipe::load(recipe).expect("recipe");
    let paths = carapace_image::build::Paths::for_recipe(&workspace(), &loaded);
    let from = paths.out.join(carapace_image::slot_files::DIR);
    std::fs::create_dir_all(dir).expect("kept slot dir");
    for entry in std::fs::read_dir(&from).expect("the build's slot dir") {
        let path = entry.expect("slot file").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    dir.to_owned()
}

/// As `bundle_and_publish`, with patches from the kept slot directories `older`.
pub fn bundle_and_publish_patched(recipe: &Path, keys: &Keys, site: &Path, older: &[PathBuf]) {
    bundle_and_publish_with(
        recipe,
        keys,
        site,
        BundleOptions {
            key: keys.signing.clone(),
            min_from: None,
            build: true,
            locked: false,
            patch_from: older.to_vec(),
            secure_boot_keys: None,
        },
    );
}

/// Builds and bundles `recipe` with `options`, and publishes it to `site`'s stable channel.
pub fn bundle_and_publish_with(recipe: &Path, keys: &Keys, site: &Path, options: BundleOptions) {
    let report = bundle(recipe, &workspace(), &options)
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
pub struct Chat<'a> {
    pub telegram: &'a FakeTelegram,
    pub handle: &'a tokio::runtime::Handle,
}

impl Chat<'_> {
    pub fn send(&self, text: &str) {
        self.telegram.inject_text(OWNER, OWNER, "Ann", text);
    }

    /// The owner sends a file (a skill's zip).
    pub fn send_file(&self, name: &str, bytes: Vec<u8>) {
        self.telegram
            .inject_document(OWNER, OWNER, "Ann", name, bytes, "");
    }

    /// The first message to the owner, from the `from`th on, that contains `needle`.
    pub fn wait_for(
        &self,
        vm: &Vm,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> (usize, String) {
        self.wait_for_any(vm, from, &[needle], timeout)
    }

    /// The first message to the owner, from the `from`th on, that contains one of `needles`.
    pub fn wait_for_any(
        &self,
        vm: &Vm,
        from: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> (usize, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let sent = self.telegram.sent();
            if let Some((at, message)) = sent.iter().enumerate().skip(from).find(|(_, m)| {
                m.chat_id == OWNER.to_string() && needles.iter().any(|n| m.text.contains(n))
            }) {
                return (at, message.text.clone());
            }
            if std::time::Instant::now() >= deadline {
                let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
                fail(
                    vm,
                    format!("the owner was never told any of {needles:?}; the chat: {texts:#?}"),
                );
            }
            self.handle.block_on(
                self.telegram
                    .wait_sent(sent.len() + 1, Duration::from_secs(5)),
            );
        }
    }
}

/// Whether the boot whose console starts at `from` is a trial, from updated's line that says
/// so (waiting for it up to `timeout`): the index of that line and `true` for a trial boot.
pub fn boot_kind(vm: &mut Vm, from: usize, timeout: Duration) -> (usize, bool) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let console = vm.console();
        for (at, line) in console.iter().enumerate().skip(from) {
            if line.starts_with(TRIAL_BOOT) {
                return (at, true);
            }
            if line.starts_with(COMMITTED_BOOT) && line.ends_with(" is committed") {
                return (at, false);
            }
            if line.starts_with("updated: update: cannot read the boot entries") {
                fail(vm, format!("updated cannot tell the kind of boot: {line}"));
            }
        }
        if std::time::Instant::now() >= deadline {
            fail(
                vm,
                format!("updated never said whether this boot is a trial ({timeout:?})"),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The console line index of the first line starting with `needle` after `from`.
pub fn console_line(vm: &mut Vm, from: usize, needle: &str, timeout: Duration) -> usize {
    match vm.wait_for(needle, from, timeout) {
        Ok((at, _)) => at,
        Err(e) => fail(vm, e),
    }
}

/// The fakes a box under update talks to, on `net`: Telegram, the LLM API and the update
/// repository (serving `site`), on a runtime thread of their own.
pub struct Fakes {
    pub telegram: FakeTelegram,
    pub llm: FakeLlm,
    pub server: UpdateServer,
    pub handle: tokio::runtime::Handle,
}

impl Fakes {
    pub fn start(net: &TestNet, site: &Path) -> Fakes {
        let (cert, key) = net.server_cert();
        let telegram_listener =
            net.listen_tcp(SocketAddr::new(TELEGRAM_HOST.parse().unwrap(), 443));
        let llm_listener = net.listen_tcp(SocketAddr::new(LLM_HOST.parse().unwrap(), 443));
        let update_listener = net.listen_tcp(SocketAddr::new(UPDATE_HOST.parse().unwrap(), 443));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let handle = runtime.handle().clone();
        let site = site.to_owned();
        let (telegram, llm, server) = runtime.block_on(async {
            let tls = || carapace_fakes::server::tls_acceptor(&cert, &key).expect("tls");
            let into_tokio = |listener: std::net::TcpListener| {
                listener.set_nonblocking(true).expect("nonblocking");
                tokio::net::TcpListener::from_std(listener).expect("tokio listener")
            };
            let telegram = FakeTelegram::from_listener(into_tokio(telegram_listener), Some(tls()))
                .expect("fake telegram");
            let llm = FakeLlm::serve(into_tokio(llm_listener), Some(tls())).expect("fake llm");
            let server =
                UpdateServer::serve(update_listener, Some(tls()), site).expect("update server");
            (telegram, llm, server)
        });
        std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
        Fakes {
            telegram,
            llm,
            server,
            handle,
        }
    }

    pub fn chat(&self) -> Chat<'_> {
        Chat {
            telegram: &self.telegram,
            handle: &self.handle,
        }
    }
}

/// Adds a service that hangs 2 s after each start (it stops petting PID 1's watchdog and
/// keeps running) to the recipe at `path`: a release that boots, runs agentd and would pass
/// its health checks, but whose box PID 1 finds unhealthy.
pub fn add_stalling_service(path: &Path) {
    let mut text = std::fs::read_to_string(path).expect("recipe");
    text.push_str(
        r#"
[[binary]]
package = "carapace-tests"
bin = "carapace-testsvc"

[[service]]
name = "stall"
exec = ["/usr/bin/carapace-testsvc", "stall"]
uid = 1107
gid = 1107
memory_max = 33554432
watchdog_sec = 1
"#,
    );
    std::fs::write(path, text).expect("write recipe");
}

/// How a broken release made from a good build's slot is broken.
#[derive(Clone, Copy, Debug)]
pub enum Breakage {
    /// One byte of the root's file system changed after its verity tree was made: the box
    /// refuses the root at its first read (dm-verity) and restarts.
    CorruptRootBlock,
    /// The initramfs replaced by zeros: the kernel finds no init and panics (`panic=10`
    /// reboots).
    KernelPanic,
}

/// Publishes `out`'s finished build (its slot files) as `version`, broken as `breakage`, to
/// `site`'s stable channel: a release that passes every signature and hash check, as a bad
/// build from a vendor would.
pub fn publish_broken(out: &Path, version: &str, breakage: Breakage, keys: &Keys, site: &Path) {
    let slot = carapace_image::slot_files::SlotFiles::read(out)
        .expect("slot files")
        .expect("a finished build");
    let work = tempfile::tempdir().expect("tempdir");
    let copy = |from: PathBuf, name: &str| {
        let to = work.path().join(name);
        std::fs::copy(from, &to).expect("copy slot file");
        to
    };
    let root = copy(slot.root_image(), "root.img");
    let mut boot: Vec<(String, PathBuf)> = slot
        .boot_files()
        .into_iter()
        .map(|(name, path)| {
            let copied = copy(path, &name);
            (name, copied)
        })
        .collect();
    match breakage {
        Breakage::CorruptRootBlock => {
            // Well inside the file system's data blocks (the verity tree comes after them).
            let mut bytes = std::fs::read(&root).expect("root image");
            let offset = (slot.info.verity.data_blocks as usize * 4096) / 2;
            bytes[offset] ^= 0xff;
            std::fs::write(&root, bytes).expect("corrupt root");
        }
        Breakage::KernelPanic => {
            let initrd = boot
                .iter_mut()
                .find(|(name, _)| name == "initrd")
                .expect("an initrd");
            std::fs::write(&initrd.1, vec![0u8; 4096]).expect("empty initrd");
        }
    }
    publish_slot(&slot, root, boot, version, keys, site);
}

/// Publishes `out`'s finished Secure Boot build as `version` with its UKIs signed again with
/// the Secure Boot keys in `other_keys`: a bundle every update check passes, made with
/// another vendor's (or a lost) Secure Boot key.
pub fn publish_signed_by(out: &Path, version: &str, other_keys: &Path, keys: &Keys, site: &Path) {
    let slot = carapace_image::slot_files::SlotFiles::read(out)
        .expect("slot files")
        .expect("a finished build");
    let work = tempfile::tempdir().expect("tempdir");
    let signer = carapace_image::secure_boot::SecureBootKeys::open(other_keys).expect("keys");
    let mut boot = Vec::new();
    for (name, path) in slot.boot_files() {
        let copy = work.path().join(&name);
        std::fs::copy(&path, &copy).expect("copy slot file");
        let removed = std::process::Command::new("sbattach")
            .arg("--remove")
            .arg(&copy)
            .status()
            .expect("sbattach (sbsigntool)");
        assert!(removed.success(), "sbattach --remove {name}");
        let unsigned = std::fs::read(&copy).expect("unsigned UKI");
        let signed = signer
            .sign(&unsigned, &name)
            .expect("sign with the other key");
        std::fs::write(&copy, signed).expect("write");
        boot.push((name, copy));
    }
    let root = work.path().join("root.img");
    std::fs::copy(slot.root_image(), &root).expect("copy root");
    publish_slot(&slot, root, boot, version, keys, site);
}

/// Bundles a slot's files (as changed by the caller) as `version` and publishes it to `site`'s
/// stable channel, signed with the update signing key.
fn publish_slot(
    slot: &carapace_image::slot_files::SlotFiles,
    root: PathBuf,
    boot: Vec<(String, PathBuf)>,
    version: &str,
    keys: &Keys,
    site: &Path,
) {
    let work = tempfile::tempdir().expect("tempdir");
    let key = carapace_update::SecretKey::load(&keys.signing, KeyKind::Signing).expect("key");
    let bundle_dir = work.path().join("bundle");
    carapace_update::write_bundle(
        &carapace_update::BundleInput {
            board: slot.info.board.clone(),
            version: carapace_update::Version::parse(version).expect("version"),
            min_from_version: carapace_update::Version::parse("0").expect("version"),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            build_id: slot.info.build_id.clone(),
            kernel_cmdline: slot.info.kernel_cmdline.clone(),
            chunker: carapace_update::ChunkerParams::DEFAULT,
            root,
            verity: slot.info.verity.clone(),
            boot,
            patch_from: Vec::new(),
        },
        &key,
        &bundle_dir,
    )
    .expect("bundle the release");
    publish(&PublishOptions {
        bundle: bundle_dir,
        to: site.to_owned(),
        channel: "stable".into(),
        rollout: "1".into(),
        key: keys.signing.clone(),
        key_list: Some(keys.key_list.clone()),
    })
    .unwrap_or_else(|e| panic!("publish the release: {e}"));
}

/// Builds `recipe` as the box's first image, with the owner's settings on its ESP: the image,
/// and the pairing code the owner sends.
pub fn build_first_image(dir: &Path, recipe: &Path) -> (PathBuf, String) {
    build_first_image_with(dir, recipe, carapace_image::build::BuildOptions::default())
}

/// As `build_first_image`, built with `options` (Secure Boot keys, say).
pub fn build_first_image_with(
    dir: &Path,
    recipe: &Path,
    options: carapace_image::build::BuildOptions,
) -> (PathBuf, String) {
    let settings = carapace_image::owner::load(&owner_settings(dir), recipe)
        .unwrap_or_else(|e| panic!("owner settings: {e}"));
    let out = carapace_image::build::build_with(recipe, &workspace(), options)
        .unwrap_or_else(|e| panic!("building {}: {e}", recipe.display()));
    let pairing = carapace_image::owner::personalise(&out.image, &settings)
        .unwrap_or_else(|e| panic!("personalising: {e}"));
    (out.image, pairing.code)
}

/// Boots `image` (a fresh disk) on `net` to its ready line on slot a, and pairs the owner.
pub fn boot_and_pair(
    image: &Path,
    name: &str,
    net: &TestNet,
    chat: &Chat,
    code: &str,
) -> (tempfile::TempDir, VmConfig, Vm) {
    boot_and_pair_with(image, name, net, chat, code, None, false)
}

/// As `boot_and_pair`; with `enrolled_vars`, under the Secure Boot firmware with that store.
pub fn boot_and_pair_with(
    image: &Path,
    name: &str,
    net: &TestNet,
    chat: &Chat,
    code: &str,
    enrolled_vars: Option<&Path>,
    tpm: bool,
) -> (tempfile::TempDir, VmConfig, Vm) {
    let (machine, mut config) = machine_of(image, name);
    config.network = net.network();
    if let Some(vars) = enrolled_vars {
        config.secure_boot(vars).expect("Secure Boot firmware");
    }
    if tpm {
        config.tpm(&machine.path().join("tpm"));
    }
    let mut vm = Vm::start(&config).expect("start QEMU");
    console_line(&mut vm, 0, "carapace: ready slot=a", BOOT_TIMEOUT);
    chat.send(&format!("/start {code}"));
    chat.wait_for(&vm, 0, "Paired: you are this box's owner", WAIT);
    (machine, config, vm)
}
