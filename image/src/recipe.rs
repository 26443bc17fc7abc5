//! The image recipe: which board, which Debian packages, which services. A misspelt or
//! missing field is an error that names it (`deny_unknown_fields`).

use std::path::{Path, PathBuf};

use std::net::IpAddr;

use board_support::{NetworkRole, ServiceEntry, ServiceTable, UpdateConfig, update_config};
use carapace_netpolicy::config::WifiNetwork;
use carapace_netpolicy::{AllowEntry, ImService, NamePattern};
use carapace_update::{KeyKind, PublicKey, SignedKeyList, Version};
use serde::Deserialize;

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Names the output directory (`out/<name>/`) and seeds the disk's UUIDs.
    pub name: String,
    pub board: String,
    pub hostname: String,
    /// The software version the image carries (image.toml, slot.json, and so the version of
    /// its update bundle); the workspace's version when left out.
    pub version: Option<String>,
    pub debian: DebianSection,
    #[serde(default)]
    pub kernel: KernelSection,
    #[serde(default)]
    pub disk: DiskSection,
    #[serde(default)]
    pub boot: BootSection,
    /// Workspace binaries beyond init, agentd and the logger (test images add the test service here).
    #[serde(default, rename = "binary")]
    pub binaries: Vec<ExtraBinary>,
    /// PID 1's service table, written to /etc/carapace/services.toml as is.
    #[serde(rename = "service")]
    pub services: Vec<ServiceEntry>,
    /// What the box may reach; required exactly when a service has `network = "netd"`.
    pub network: Option<NetworkSection>,
    /// Configuration files of the Debian programs the recipe runs (the D-Bus bus policy, a
    /// test access point's hostapd.conf), written into the root as they are.
    #[serde(default, rename = "file")]
    pub files: Vec<ConfigFile>,
    /// Models for the local inference engine, by their name in infer/models.lock; the image
    /// carries their files under board_support::local_inference::MODELS_DIR.
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
    /// Signed model packs (`carapace models add`) the image carries under
    /// MODELS_DIR/packs/<name>-<version>/; each must verify with the `[update]` keys.
    #[serde(default, rename = "model_pack")]
    pub model_packs: Vec<ModelPackEntry>,
    /// Instruction-only skills (SKILL.md folders) the image carries under
    /// carapace_skills::SKILLS_DIR/<name>/, for agentd.
    #[serde(default, rename = "skill")]
    pub skills: Vec<SkillEntry>,
    /// Signed skill packs (`carapace skill pack`, a zip) the image carries as it carries a
    /// [[skill]]; each must verify with the `[update]` keys. Once loaded, each is in `skills`.
    #[serde(default, rename = "skill_pack")]
    pub skill_packs: Vec<SkillPackEntry>,
    /// The keys the image trusts for updates; without it, boxes running the image take none.
    pub update: Option<UpdateSection>,
    /// The vendor's board support package: required by a board whose kernel comes from one.
    pub bsp: Option<BspSection>,
    /// Raspberry Pi's own kernel instead of the board's Debian one (pi_kernel.rs).
    pub pi_kernel: Option<PiKernelSection>,
    /// An AI HAT+'s driver, firmware and HailoRT (hailo.rs).
    pub hailo: Option<HailoSection>,
}

/// `[hailo]`: the Hailo accelerator's driver, firmware and HailoRT, from a folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HailoSection {
    /// Absolute, or relative to the recipe. CARAPACE_HAILO_DIR takes precedence.
    pub dir: String,
    pub device: crate::hailo::HailoDevice,
    /// The one release of all three: "4.23.0".
    pub version: String,
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[pi_kernel]`: Raspberry Pi's kernel packages, as Raspberry Pi OS ships them, from a folder
/// the owner downloaded them into. Only that kernel sets the firmware's tryboot flag and has the
/// Hailo driver in-tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiKernelSection {
    /// The folder of .deb files: absolute, or relative to the recipe. CARAPACE_PI_KERNEL_DIR
    /// takes precedence.
    pub dir: String,
    /// The kernel release the packages must hold, as `uname -r` prints it
    /// ("6.12.47+rpt-rpi-2712").
    pub release: String,
    /// `dir`, resolved when the recipe is loaded.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[update]`: the vendor's root public key and a key list it signed, built into the verified
/// root (carapace_update::layout::IMAGE_ROOT_KEY and IMAGE_KEY_LIST), and where and when the
/// box looks for updates (/etc/carapace/update.toml, board_support::update_config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// 64 hex digits, as `carapace keygen --root` prints them.
    pub root_key: String,
    /// A file beside the recipe, written by `carapace keys sign`.
    pub key_list: String,
    /// The https base URL of the board's repository (what `carapace publish` fills).
    pub server: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    #[serde(default = "default_check_hours")]
    pub check_hours: u32,
    #[serde(default = "default_quiet_hour")]
    pub quiet_hour: u8,
    /// The download cap, KiB/s (none when absent).
    #[serde(default)]
    pub max_kib_per_s: Option<u32>,
    /// Seconds a trial boot must stay healthy (agentd running without a restart, the box
    /// without an unhealthy verdict) before it is committed.
    #[serde(default = "default_trial_stable_s")]
    pub trial_stable_s: u32,
    /// The key list's text, read and checked against `root_key` by `Recipe::load`.
    #[serde(skip)]
    pub key_list_text: String,
}

fn default_channel() -> String {
    update_config::DEFAULT_CHANNEL.to_owned()
}

fn default_check_hours() -> u32 {
    update_config::DEFAULT_CHECK_HOURS
}

fn default_quiet_hour() -> u8 {
    update_config::DEFAULT_QUIET_HOUR
}

fn default_trial_stable_s() -> u32 {
    update_config::DEFAULT_TRIAL_STABLE_S
}

impl UpdateSection {
    pub fn root_public_key(&self) -> std::result::Result<PublicKey, String> {
        PublicKey::from_hex(KeyKind::Root, &self.root_key)
            .map_err(|reason| format!("[update] root_key: {reason}"))
    }

    /// The box's update settings, checked by the rules the update service reads them with.
    pub fn update_config(&self) -> std::result::Result<UpdateConfig, String> {
        let config = UpdateConfig {
            server: self.server.clone(),
            channel: self.channel.clone(),
            check_hours: self.check_hours,
            quiet_hour: self.quiet_hour,
            max_kib_per_s: self.max_kib_per_s,
            trial_stable_s: self.trial_stable_s,
        };
        match config.validate() {
            Ok(()) => Ok(config),
            Err(board_support::Error::UpdateConfigField {
                field,
                value,
                problem,
            }) => Err(format!("[update] {field} = {value:?}: {problem}")),
            Err(other) => Err(format!("[update]: {other}")),
        }
    }

    /// The image's files: the root public key file, the key list and the update settings, as
    /// the box reads them.
    pub fn image_files(&self) -> std::result::Result<[(&'static str, String); 3], String> {
        Ok([
            (
                carapace_update::layout::IMAGE_ROOT_KEY,
                self.root_public_key()?.to_file_text(),
            ),
            (
                carapace_update::layout::IMAGE_KEY_LIST,
                self.key_list_text.clone(),
            ),
            (
                board_support::UPDATE_CONFIG_PATH,
                self.update_config()?.render(),
            ),
        ])
    }
}

/// A text file under /etc/carapace/, mode 0644: readable by every service, so never a secret.
/// Its text is given inline (`text`) or read from a file beside the recipe (`source`, so that
/// recipes share one copy, e.g. recipes/files/dbus-system.conf).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub path: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub source: Option<String>,
}

/// The directory recipe files go into: the builder's own files there have fixed names that a
/// recipe file may not take.
const CONFIG_FILE_DIR: &str = "/etc/carapace/";

/// The image's network policy: netd's default configuration and the firewall come from it
/// (src/network.rs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// IM services the agent talks through; each brings its API hosts to the allowlist.
    #[serde(default)]
    pub im: Vec<ImService>,
    /// The LLM API host.
    pub llm: Option<NamePattern>,
    /// The host updates are fetched from.
    pub update_server: Option<NamePattern>,
    /// Allowlist entries beyond the ones the lines above bring.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// NTP servers (names or addresses) after those the DHCP lease names.
    #[serde(default)]
    pub time_servers: Vec<String>,
    /// DNS resolvers (addresses) besides those the DHCP lease names.
    #[serde(default)]
    pub dns_upstreams: Vec<IpAddr>,
    /// Wi-Fi networks netd joins through iwd, in order of preference. They land in
    /// /etc/carapace/netd.toml, which every service can read: test networks only; an owner's
    /// networks belong in /data/netd/config.toml.
    #[serde(default)]
    pub wifi: Vec<WifiNetwork>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianSection {
    pub suite: String,
    /// Packages the image takes files from, besides the board's kernel and boot loader.
    pub packages: Vec<String>,
    /// Programs copied into the root together with the shared libraries they load.
    #[serde(default)]
    pub programs: Vec<String>,
    /// Data the programs read, copied from the packages as they are: a file, a folder with
    /// everything below it (espeak-ng's phoneme tables and English dictionary), or the files
    /// one `*` matches (firmware), each at its own path or under another (`{ from, to }`).
    #[serde(default)]
    pub data: Vec<DataEntry>,
}

/// `[bsp]`: the vendor's board support package, for a board whose kernel comes from it
/// (jetson-orin). See bsp.rs for what is taken from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BspSection {
    /// The folder that holds Linux_for_Tegra/: absolute, or relative to the recipe. The
    /// environment's CARAPACE_BSP_DIR takes precedence, so one recipe serves every checkout.
    pub dir: String,
    /// The release it must be, as its nv_tegra_release says: "R36.4.3" (JetPack 6.2).
    pub release: String,
    /// Packages of Linux_for_Tegra/nv_tegra/l4t_deb_packages/ whose libraries and firmware
    /// go into the root: nvidia-l4t-core, nvidia-l4t-cuda, ...
    #[serde(default)]
    pub packages: Vec<String>,
    /// `dir`, resolved when the recipe is loaded.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One `[debian] data` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum DataEntry {
    Path(String),
    /// A file placed under another name: what a package's maintainer script would have
    /// linked (Debian's alternatives), e.g. `regulatory.db-upstream` as `regulatory.db`.
    Renamed {
        from: String,
        to: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    /// Modules loaded by stage 2 from the root (the initramfs gets the board's storage set).
    #[serde(default)]
    pub root_modules: Vec<String>,
    /// Extra kernel command line words.
    #[serde(default)]
    pub extra_cmdline: Vec<String>,
}

/// `[boot]`: what the board's firmware reads besides what the builder writes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// Raspberry Pi: lines appended to each slot's config.txt (`dtparam=pciex1_gen=3` for an
    /// AI HAT+, `device_tree=bcm2712-d-rpi-5-b.dtb` for a D0 board).
    #[serde(default)]
    pub config_txt: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSection {
    pub esp_mib: Option<u64>,
    pub root_mib: Option<u64>,
    pub data_mib: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraBinary {
    /// Cargo package in this workspace.
    pub package: String,
    /// Binary target of that package; installed as /usr/bin/<bin>.
    pub bin: String,
    /// Static unless a library must be loaded at run time (cargo_build.rs says why).
    #[serde(default)]
    pub linkage: Linkage,
}

/// How a workspace binary is linked into the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    /// Needs nothing from the root: no loader, no libraries.
    #[default]
    Static,
    /// Against the root's glibc, which the image then carries with the binary's libraries:
    /// for the inference engine, which loads ONNX Runtime with dlopen (a static glibc binary
    /// cannot).
    Dynamic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// A model's name in infer/models.lock (`all-minilm-l6-v2`).
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPackEntry {
    /// The pack's folder, relative to the recipe.
    pub path: String,
    /// What `Recipe::load` found there, checked against the recipe's update keys.
    #[serde(skip)]
    pub verified: Option<carapace_models::VerifiedPack>,
}

/// `[[skill_pack]]`: a signed skill pack's zip, relative to the recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillPackEntry {
    pub path: String,
    /// Where `Recipe::load` unpacked it, for as long as the recipe is kept.
    #[serde(skip)]
    pub unpacked: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// `[[skill]]`: a skill folder, relative to the recipe (carapace_skills::check_folder says what
/// one may hold); or a `[[skill_pack]]`, unpacked and verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillEntry {
    pub path: String,
    /// The pack it was unpacked from (then `path` is the unpacked folder), for errors.
    #[serde(skip)]
    pub pack: Option<String>,
    /// What `Recipe::load` found there: the skill's name and its files (path inside the
    /// folder, where it is).
    #[serde(skip)]
    pub checked: Option<(String, Vec<(String, PathBuf)>)>,
    /// The hosts its code declares (skill.toml): the builder approves them for the image, and
    /// they join netd's allowlist at 443.
    #[serde(skip)]
    pub hosts: Vec<String>,
}

impl Recipe {
    /// Every host the recipe's skills' code may reach, once each.
    pub fn skill_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for host in self.skills.iter().flat_map(|skill| &skill.hosts) {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        hosts
    }

    pub fn load(path: &Path) -> Result<(Recipe, String)> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::RecipeRead {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message| Error::RecipeInvalid {
            path: path.to_path_buf(),
            message,
        };
        let mut recipe = Self::parse(&text).map_err(invalid)?;
        // The shared files' text joins the recipe's for the build id: a change there is a
        // change of the recipe.
        let mut text = text;
        let dir = path.parent().unwrap_or(Path::new("."));
        for file in &mut recipe.files {
            if let Some(source) = &file.source {
                let from = dir.join(source);
                file.text = std::fs::read_to_string(&from).map_err(|err| {
                    invalid(format!(
                        "[[file]] {}: read source {}: {err}",
                        file.path,
                        from.display()
                    ))
                })?;
                text.push_str(&file.text);
            }
        }
        if let Some(bsp) = &mut recipe.bsp {
            bsp.path = match std::env::var_os("CARAPACE_BSP_DIR") {
                Some(from_env) if !from_env.is_empty() => PathBuf::from(from_env),
                _ => dir.join(&bsp.dir),
            };
        }
        if let Some(pi_kernel) = &mut recipe.pi_kernel {
            pi_kernel.path = match std::env::var_os("CARAPACE_PI_KERNEL_DIR") {
                Some(from_env) if !from_env.is_empty() => PathBuf::from(from_env),
                _ => dir.join(&pi_kernel.dir),
            };
        }
        if let Some(hailo) = &mut recipe.hailo {
            hailo.path = match std::env::var_os("CARAPACE_HAILO_DIR") {
                Some(from_env) if !from_env.is_empty() => PathBuf::from(from_env),
                _ => dir.join(&hailo.dir),
            };
        }
        if let Some(update) = &mut recipe.update {
            let from = dir.join(&update.key_list);
            update.key_list_text = std::fs::read_to_string(&from).map_err(|err| {
                invalid(format!("[update] key_list: read {}: {err}", from.display()))
            })?;
            check_key_list(update, &from).map_err(invalid)?;
            text.push_str(&update.key_list_text);
        }
        // A pack, checked with the update keys: its signed manifest (every file's sha256)
        // joins the recipe's text too.
        let mut names: Vec<String> = recipe.models.iter().map(|m| m.name.clone()).collect();
        for pack in &mut recipe.model_packs {
            let verified = verify_model_pack(recipe.update.as_ref(), &dir.join(&pack.path))
                .map_err(|why| invalid(format!("[[model_pack]] {}: {why}", pack.path)))?;
            let manifest = verified.dir.join(carapace_models::PACK_MANIFEST);
            text.push_str(
                &std::fs::read_to_string(&manifest)
                    .map_err(|err| invalid(format!("[[model_pack]] {}: {err}", pack.path)))?,
            );
            if names.contains(&verified.manifest.name) {
                return Err(invalid(format!(
                    "[[model_pack]] {}: another model of the recipe is named {}",
                    pack.path, verified.manifest.name
                )));
            }
            names.push(verified.manifest.name.clone());
            pack.verified = Some(verified);
        }
        // A pack is unpacked and then taken as a [[skill]] folder; its signature is checked
        // below, as a [[skill]] folder that is a pack is (a stale signature fails the build).
        for pack in &mut recipe.skill_packs {
            let named = |why: String| invalid(format!("[[skill_pack]] {}: {why}", pack.path));
            let from = dir.join(&pack.path);
            let bytes = std::fs::read(&from).map_err(|err| named(err.to_string()))?;
            text.push_str(&format!(
                "\nskill_pack {} {}",
                pack.path,
                crate::fsutil::sha256_hex(&bytes)
            ));
            let unpacked = tempfile::tempdir().map_err(|err| named(err.to_string()))?;
            let name = carapace_skills::archive::unpack(&bytes, unpacked.path())
                .map_err(|err| named(err.to_string()))?;
            recipe.skills.push(SkillEntry {
                path: unpacked.path().join(&name).to_string_lossy().into_owned(),
                pack: Some(pack.path.clone()),
                checked: None,
                hosts: Vec::new(),
            });
            pack.unpacked = Some(std::sync::Arc::new(unpacked));
        }
        // A skill's files join the recipe's text by their hashes: a changed file is a new build.
        let mut skill_names: Vec<String> = Vec::new();
        let has_skill_host = recipe.has_skill_host();
        for skill in &mut recipe.skills {
            let folder = dir.join(&skill.path);
            let label = match &skill.pack {
                Some(pack) => format!("[[skill_pack]] {pack}"),
                None => format!("[[skill]] {}", skill.path),
            };
            let named = |why: String| invalid(format!("{label}: {why}"));
            if skill.pack.is_some() || carapace_skills::pack::is_pack(&folder) {
                verify_skill_pack(recipe.update.as_ref(), &folder).map_err(named)?;
            }
            let (parsed, files) =
                carapace_skills::check_folder(&folder).map_err(|err| named(err.to_string()))?;
            if skill_names.contains(&parsed.name) {
                return Err(named(format!(
                    "another skill of the recipe is named {}",
                    parsed.name
                )));
            }
            for (inside, file) in &files {
                let bytes = std::fs::read(file)
                    .map_err(|err| named(format!("{}: {err}", file.display())))?;
                let digest = crate::fsutil::sha256_hex(&bytes);
                text.push_str(&format!("\nskill {}/{inside} {digest}", parsed.name));
            }
            skill_names.push(parsed.name.clone());
            skill.hosts = carapace_skills::Declaration::load(&folder)
                .map_err(|err| named(err.to_string()))?
                .map(|declaration| declaration.hosts)
                .unwrap_or_default();
            let has_code = files
                .iter()
                .any(|(inside, _)| inside == carapace_skills::COMPONENT_FILE);
            if has_code && !has_skill_host {
                return Err(named(format!(
                    "skill {} has code, which runs in the skill host service: add a [[service]] \
                     named \"skillhost\" with exec = [\"{}\", \"serve\", \"--client\", \
                     \"<agentd's uid>\"] (recipes/x86-64-qemu.toml has one)",
                    parsed.name,
                    carapace_skills::SKILLHOST_PROGRAM
                )));
            }
            skill.checked = Some((parsed.name, files));
        }
        Ok((recipe, text))
    }

    /// Whether a service runs the skill host (then the image carries it, and agentd runs the
    /// code of skills, the recipe's or the owner's, through it).
    pub fn has_skill_host(&self) -> bool {
        self.services.iter().any(|service| {
            service.exec.first().map(String::as_str) == Some(carapace_skills::SKILLHOST_PROGRAM)
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Recipe, String> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| e.to_string())?;
        recipe.validate()?;
        Ok(recipe)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "name '{}' must be non-empty ASCII letters, digits, '-' or '_'",
                self.name
            ));
        }
        validate_hostname(&self.hostname)?;
        if let Some(version) = &self.version {
            Version::parse(version).map_err(|reason| format!("version: {reason}"))?;
        }
        validate_suite(&self.debian.suite)?;
        validate_models(&self.models, &self.binaries)?;
        for word in &self.kernel.extra_cmdline {
            validate_cmdline_word(word)?;
        }
        for line in &self.boot.config_txt {
            if !line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(format!(
                    "[boot] config_txt line {line:?} must be one line of printable ASCII"
                ));
            }
            if let Some(why) = crate::pi_boot::refused_config_line(line) {
                return Err(format!(
                    "[boot] config_txt line {line:?} is refused: {why}; the builder writes \
                     those itself"
                ));
            }
        }
        // The same check PID 1 runs at boot: a table that builds is a table that boots.
        ServiceTable::validate(&self.services).map_err(|err| err.to_string())?;
        if !self.services.iter().any(|s| s.ready) {
            return Err("at least one service must have ready = true (normally agentd)".into());
        }
        for file in &self.files {
            validate_config_file_path(&file.path)?;
            if file.source.is_some() != file.text.is_empty() {
                return Err(format!(
                    "[[file]] {}: give its contents either as text or as source (a file \
                     beside the recipe), not both and not neither",
                    file.path
                ));
            }
        }
        if let Some(update) = &self.update {
            update.root_public_key()?;
            update.update_config()?;
        }
        self.validate_network()
    }

    /// `[network]` and a netd service come together: the firewall the builder writes locks
    /// everything down, and only netd opens it.
    fn validate_network(&self) -> std::result::Result<(), String> {
        match (&self.network, self.netd_service()) {
            (None, Some(netd)) => Err(format!(
                "service {} has network = \"netd\" but the recipe has no [network] table; add \
                 one (im, llm, allow, ...) to say what the box may reach",
                netd.name
            )),
            (Some(_), None) => Err(
                "[network] needs a service with network = \"netd\" to apply it; add netd to \
                 the service table or remove [network]"
                    .into(),
            ),
            (Some(network), Some(_)) => {
                self.check_update_server_once(network)?;
                for (key, host) in [
                    ("llm", &network.llm),
                    ("update_server", &network.update_server),
                ] {
                    if let Some(NamePattern::Below(_)) = host {
                        return Err(format!(
                            "[network] {key} must be one host name, not a wildcard; put \
                             wildcards in [network] allow"
                        ));
                    }
                }
                crate::network::image_netd_config(
                    network,
                    self.update.as_ref(),
                    &self.skill_hosts(),
                )?
                .validate()
                .map_err(|err| format!("[network]: {err}"))
            }
            (None, None) => Ok(()),
        }
    }

    /// `[network] update_server` and `[update] server` name one host, or one is left out: two
    /// would allow a host the box never fetches from.
    fn check_update_server_once(
        &self,
        network: &NetworkSection,
    ) -> std::result::Result<(), String> {
        let (Some(named), Some(update)) = (&network.update_server, &self.update) else {
            return Ok(());
        };
        let (host, _) = update
            .update_config()?
            .server_host()
            .map_err(|e| e.to_string())?;
        if named.matches(&host) {
            return Ok(());
        }
        Err(format!(
            "[network] update_server = \"{named}\" is not the host of [update] server \
             ({host}); leave update_server out: the builder allows [update] server's host"
        ))
    }

    /// The version the image carries: the recipe's, else the workspace's.
    pub fn image_version(&self) -> String {
        self.version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
    }

    /// The service with `network = "netd"`, if any (the table allows at most one).
    pub fn netd_service(&self) -> Option<&ServiceEntry> {
        self.services
            .iter()
            .find(|s| s.network == Some(NetworkRole::Netd))
    }

    /// The lock file that pins the recipe's Debian packages lives next to it.
    pub fn lock_path(recipe_path: &Path) -> PathBuf {
        recipe_path.with_extension("lock")
    }

    pub fn services_toml(&self) -> Result<String> {
        let body = toml::to_string(&ServiceTable {
            services: self.services.clone(),
        })
        .map_err(|e| Error::image(format!("cannot write the service table: {e}")))?;
        Ok(format!(
            "# PID 1's static service table, generated from recipe '{}'. Order is start order.\n\
             # netd (links, DHCP, time, the DNS firewall) starts before the egress services.\n\n{body}",
            self.name
        ))
    }
}

/// A model pack checked as the box will check it: signed by a key of the recipe's key list.
fn verify_model_pack(
    update: Option<&UpdateSection>,
    dir: &Path,
) -> std::result::Result<carapace_models::VerifiedPack, String> {
    let trust = pack_trust(update, "model packs")?;
    carapace_models::verify_pack(dir, &trust, unix_now()).map_err(|e| e.to_string())
}

/// A skill pack checked as a box checks one the owner sends.
fn verify_skill_pack(
    update: Option<&UpdateSection>,
    dir: &Path,
) -> std::result::Result<(), String> {
    let trust = pack_trust(update, "skill packs")?;
    carapace_skills::pack::verify(dir, &trust, unix_now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The recipe's update keys, which its packs must verify with.
fn pack_trust(
    update: Option<&UpdateSection>,
    packs: &str,
) -> std::result::Result<carapace_update::Trust, String> {
    let update = update.ok_or_else(|| {
        format!("{packs} are checked with the image's update keys, and this recipe has no [update]")
    })?;
    let root = update.root_public_key()?;
    let list = SignedKeyList::parse(update.key_list_text.as_bytes()).map_err(|e| e.to_string())?;
    carapace_update::Trust::new(root, &list).map_err(|e| e.to_string())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The key list must verify with the root key: an image whose list it cannot check would
/// trust no signing key at all.
fn check_key_list(update: &UpdateSection, path: &Path) -> std::result::Result<(), String> {
    let root = update.root_public_key()?;
    SignedKeyList::parse(update.key_list_text.as_bytes())
        .and_then(|list| list.verify(&root).map(|_| ()))
        .map_err(|err| format!("[update] key_list {}: {err}", path.display()))
}

/// It becomes the box's hostname and a line of image.toml (board-support's definition).
fn validate_hostname(hostname: &str) -> std::result::Result<(), String> {
    if board_support::image_info::is_host_name(hostname) {
        Ok(())
    } else {
        Err(format!(
            "hostname {hostname:?} must be 1 to 63 lower-case letters, digits or '-', not \
             starting or ending with '-'"
        ))
    }
}

/// The workspace package of the inference engine, which loads the models.
pub const ENGINE_PACKAGE: &str = "carapace-infer";

/// Every `[[model]]` names a model of infer/models.lock (a runtime library is not a model),
/// once; a model that runs on ONNX Runtime needs the engine linked dynamically.
fn validate_models(
    models: &[ModelEntry],
    binaries: &[ExtraBinary],
) -> std::result::Result<(), String> {
    let lock = carapace_models::ModelLock::pinned().map_err(|e| e.to_string())?;
    let pinned: Vec<&str> = lock
        .names()
        .filter(|name| lock.model(name).is_ok_and(|pin| pin.runs_on.is_some()))
        .collect();
    for (i, model) in models.iter().enumerate() {
        if !pinned.contains(&model.name.as_str()) {
            return Err(format!(
                "[[model]] {}: not pinned in infer/models.lock; pinned models: {}",
                model.name,
                pinned.join(", ")
            ));
        }
        let runs_on = lock.model(&model.name).ok().and_then(|pin| pin.runs_on);
        let engine_dynamic = binaries
            .iter()
            .any(|b| b.package == ENGINE_PACKAGE && b.linkage == Linkage::Dynamic);
        if runs_on == Some(carapace_models::RunsOn::Onnxruntime) && !engine_dynamic {
            return Err(format!(
                "[[model]] {}: runs on ONNX Runtime, which a static engine cannot load; give \
                 the [[binary]] of package {ENGINE_PACKAGE} linkage = \"dynamic\"",
                model.name
            ));
        }
        if models[..i].iter().any(|m| m.name == model.name) {
            return Err(format!("[[model]] {}: listed twice", model.name));
        }
    }
    Ok(())
}

/// A Debian release name: it is put into apt's sources list with -updates and -security.
fn validate_suite(suite: &str) -> std::result::Result<(), String> {
    if !suite.is_empty() && suite.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "[debian] suite {suite:?} must be a release name such as \"trixie\" (lower-case \
             letters; its -updates and -security suites are added by the builder)"
        ))
    }
}

/// One word of the kernel command line, which the loader entry carries as one line: no
/// whitespace or control character may split it or start a new entry line, and the boot
/// contract's own parameters are the builder's to write.
fn validate_cmdline_word(word: &str) -> std::result::Result<(), String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_graphic()) || word.contains('"') {
        return Err(format!(
            "[kernel] extra_cmdline word {word:?} must be printable ASCII without spaces or \
             quotes; give each word as its own string"
        ));
    }
    let key = word.split('=').next().unwrap_or(word);
    let reserved = key.starts_with("carapace.")
        || matches!(key, "root" | "init" | "rdinit" | "console" | "panic");
    if reserved {
        return Err(format!(
            "[kernel] extra_cmdline word {word:?} sets '{key}', which the builder writes \
             itself (docs/boot-contract.md)"
        ));
    }
    Ok(())
}

/// A recipe file lives directly in /etc/carapace/ under a name the builder does not write.
fn validate_config_file_path(path: &str) -> std::result::Result<(), String> {
    let name = path.strip_prefix(CONFIG_FILE_DIR).unwrap_or_default();
    let name_ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(format!(
            "[[file]] path {path:?} must be a file directly in {CONFIG_FILE_DIR} (letters, \
             digits, '-', '_', '.')"
        ));
    }
    let builders = [
        board_support::IMAGE_INFO_PATH,
        board_support::SERVICE_TABLE_PATH,
        carapace_netpolicy::BASE_RULESET_PATH,
        carapace_netpolicy::config::IMAGE_CONFIG_PATH,
        carapace_update::layout::IMAGE_ROOT_KEY,
        carapace_update::layout::IMAGE_KEY_LIST,
        board_support::UPDATE_CONFIG_PATH,
    ];
    if builders.contains(&path) {
        return Err(format!(
            "[[file]] path {path:?} is written by the builder itself; choose another name"
        ));
    }
    Ok(())
}

/// Reads a file the builder needs, naming it on failure.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
board = "x86-64"
hostname = "carapace"
[debian]
suite = "trixie"
packages = ["e2fsprogs"]
[[service]]
name = "agentd"
exec = ["/usr/bin/agentd"]
uid = 1000
gid = 1000
memory_max = 268435456
ready = true
"#;

    /// The recipes in the tree pass the check PID 1 runs at boot.
    #[test]
    fn the_shipped_recipes_are_valid() {
        let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes");
        for name in ["x86-64-qemu.toml", "x86-64-qemu-test.toml"] {
            let (recipe, _) = Recipe::load(&recipes.join(name)).unwrap();
            assert_eq!(
                recipe.services[0].name, "logger",
                "{name}: the logger goes first"
            );
        }
    }

    #[test]
    fn a_model_must_be_pinned_in_models_lock_and_listed_once() {
        let with = |models: &str| Recipe::parse(&format!("{GOOD}\n{models}"));
        let recipe = with("[[model]]\nname = \"all-minilm-l6-v2\"\n").unwrap();
        assert_eq!(recipe.models[0].name, "all-minilm-l6-v2");
        let err = with("[[model]]\nname = \"gpt-5\"\n").unwrap_err();
        assert!(
            err.starts_with("[[model]] gpt-5: not pinned in infer/models.lock"),
            "{err}"
        );
        assert!(err.contains("all-minilm-l6-v2"), "{err}");
        let err = with("[[model]]\nname = \"onnxruntime-x86_64\"\n").unwrap_err();
        assert!(err.contains("not pinned"), "{err}");
        let onnx_model = "[[model]]\nname = \"silero-vad\"\n";
        let err = with(onnx_model).unwrap_err();
        assert!(
            err.starts_with("[[model]] silero-vad: runs on ONNX Runtime, which a static engine"),
            "{err}"
        );
        let engine = |linkage: &str| {
            format!("[[binary]]\npackage = \"carapace-infer\"\nbin = \"carapace-infer\"\n{linkage}")
        };
        let err = with(&format!("{}{onnx_model}", engine(""))).unwrap_err();
        assert!(err.contains("linkage = \"dynamic\""), "{err}");
        let recipe = with(&format!(
            "{}{onnx_model}",
            engine("linkage = \"dynamic\"\n")
        ))
        .unwrap();
        assert_eq!(recipe.binaries[0].linkage, Linkage::Dynamic);
        let err = with(&engine("linkage = \"shared\"\n")).unwrap_err();
        assert!(err.contains("shared"), "{err}");
        let twice =
            "[[model]]\nname = \"all-minilm-l6-v2\"\n[[model]]\nname = \"all-minilm-l6-v2\"\n";
        assert!(with(twice).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn parses_a_good_recipe() {
        let recipe = Recipe::parse(GOOD).unwrap();
        assert_eq!(recipe.services[0].name, "agentd");
        assert!(recipe.services_toml().unwrap().contains("[[service]]"));
    }

    #[test]
    fn misspelt_field_is_named() {
        let err = Recipe::parse(&GOOD.replace("hostname", "hostnme")).unwrap_err();
        assert!(err.contains("hostnme"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let err = Recipe::parse(&GOOD.replace("board = \"x86-64\"\n", "")).unwrap_err();
        assert!(err.contains("board"), "{err}");
    }

    #[test]
    fn words_that_would_break_the_loader_entry_are_refused() {
        for (bad, named) in [
            (
                "extra_cmdline = [\"quiet\\ninitrd /evil\"]",
                "printable ASCII",
            ),
            ("extra_cmdline = [\"a b\"]", "without spaces"),
            ("extra_cmdline = [\"carapace.slot=b\"]", "'carapace.slot'"),
            ("extra_cmdline = [\"init=/bin/sh\"]", "'init'"),
        ] {
            let text = format!("{GOOD}[kernel]\n{bad}\n");
            let err = Recipe::parse(&text).unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
        }
        let ok = format!("{GOOD}[kernel]\nextra_cmdline = [\"loglevel=4\"]\n");
        Recipe::parse(&ok).unwrap();
    }

    #[test]
    fn hostname_and_suite_are_checked() {
        let err = Recipe::parse(&GOOD.replace("\"carapace\"", "\"box\\nname\"")).unwrap_err();
        assert!(err.contains("hostname"), "{err}");
        let err = Recipe::parse(&GOOD.replace("\"trixie\"", "\"trixie main\"")).unwrap_err();
        assert!(err.contains("suite"), "{err}");
    }

    #[test]
    fn tiny_memory_limit_is_refused() {
        let err = Recipe::parse(&GOOD.replace("268435456", "1000")).unwrap_err();
        assert!(err.contains("memory_max"), "{err}");
    }

    /// The capability name PID 1 would refuse at every boot is refused at build time.
    #[test]
    fn capability_without_cap_prefix_is_refused_at_build_time() {
        let recipe = GOOD.replace(
            "ready = true",
            "ready = true\ncapabilities = [\"NET_ADMIN\"]",
        );
        let err = Recipe::parse(&recipe).unwrap_err();
        assert!(
            err.contains("service agentd")
                && err.contains("`capabilities`")
                && err.contains("NET_ADMIN"),
            "{err}"
        );
    }

    #[test]
    fn root_services_are_refused_at_build_time() {
        let err = Recipe::parse(&GOOD.replace("uid = 1000", "uid = 0")).unwrap_err();
        assert!(err.contains("`uid`"), "{err}");
    }

    const NETD: &str = r#"
[[service]]
name = "netd"
exec = ["/usr/bin/netd"]
uid = 1002
gid = 1002
memory_max = 33554432
ready = true
network = "netd"
"#;

    /// GOOD with netd first and agentd as its egress service, plus `network`.
    fn networked(network: &str) -> String {
        let agentd = GOOD.find("[[service]]").unwrap();
        let (head, agentd) = GOOD.split_at(agentd);
        let agentd = agentd.replace(
            "ready = true",
            "ready = true\nnetwork = \"egress\"\nafter = [\"netd\"]",
        );
        format!("{head}{NETD}{agentd}{network}")
    }

    #[test]
    fn a_networked_recipe_parses() {
        let recipe = Recipe::parse(&networked(
            "[network]\nim = [\"telegram\", \"feishu\"]\nllm = \"api.openai.com\"\n\
             allow = [{ name = \"*.example.org\", ports = [443, 8443] }]\n",
        ))
        .unwrap();
        let network = recipe.network.as_ref().unwrap();
        assert_eq!(network.im, [ImService::Telegram, ImService::Feishu]);
        assert_eq!(network.allow[0].ports, [443, 8443]);
        assert_eq!(recipe.netd_service().unwrap().uid, 1002);
    }

    #[test]
    fn netd_and_the_network_table_come_together() {
        let err = Recipe::parse(&networked("")).unwrap_err();
        assert!(
            err.contains("service netd") && err.contains("no [network]"),
            "{err}"
        );
        let err = Recipe::parse(&format!("{GOOD}[network]\nim = [\"telegram\"]\n")).unwrap_err();
        assert!(err.contains("[network] needs a service"), "{err}");
    }

    #[test]
    fn bad_network_settings_are_refused_with_the_reason() {
        for (bad, reason) in [
            ("im = [\"slack\"]", "telegram"),
            ("llm = \"api..openai.com\"", "\"api..openai.com\""),
            ("llm = \"*.openai.com\"", "not a wildcard"),
            ("update_server = \"10.0.0.1\"", "IP address"),
            ("allow = [{ name = \"a.org\", ports = [0] }]", "port 0"),
            ("dns_upstreams = [\"127.0.0.53\"]", "dns.upstreams[0]"),
            ("dns_upstreams = [\"resolver.example\"]", "IP address"),
            ("time_servers = [\"ntp server\"]", "time.servers[0]"),
            ("proxy = \"x\"", "proxy"),
        ] {
            let err = Recipe::parse(&networked(&format!("[network]\n{bad}\n"))).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn after_must_name_an_earlier_ready_service() {
        let recipe = format!(
            "{GOOD}[[service]]\nname = \"b\"\nexec = [\"/bin/b\"]\nuid = 2\ngid = 2\nmemory_max = 4194304\nafter = [\"netd\"]\n"
        );
        let err = Recipe::parse(&recipe).unwrap_err();
        assert!(
            err.contains("service b") && err.contains("`after`"),
            "{err}"
        );
    }

    /// [update]: the key list beside the recipe must verify with the root key, and the image
    /// gets both as files the box reads, with the update settings.
    #[test]
    fn the_update_section_is_checked_and_becomes_three_image_files() {
        use carapace_update::{KeyKind, KeyList, ListedKey, SecretKey, SignedKeyList};
        let dir = tempfile::tempdir().unwrap();
        let root = SecretKey::generate(KeyKind::Root).unwrap();
        let signing = SecretKey::generate(KeyKind::Signing).unwrap();
        let list = SignedKeyList::sign(
            KeyList {
                serial: 1,
                keys: vec![ListedKey {
                    id: signing.id(),
                    public_key: signing.public().to_hex(),
                    not_after: None,
                }],
                revoked: vec![],
            },
            &root,
        )
        .unwrap();
        std::fs::write(dir.path().join("keys.json"), list.to_file_text()).unwrap();
        let recipe_path = dir.path().join("r.toml");
        let with = |root_key: &str, key_list: &str| {
            format!(
                "{GOOD}[update]\nroot_key = \"{root_key}\"\nkey_list = \"{key_list}\"\n\
                 server = \"https://updates.example.com/x86-64\"\n"
            )
        };
        let root_hex = root.public().to_hex();
        std::fs::write(&recipe_path, with(&root_hex, "keys.json")).unwrap();
        let (recipe, text) = Recipe::load(&recipe_path).unwrap();
        assert!(
            text.ends_with(&list.to_file_text()),
            "the list joins the build id"
        );
        let files = recipe.update.as_ref().unwrap().image_files().unwrap();
        assert_eq!(files[0].0, "/etc/carapace/update-root.pub");
        let public = carapace_update::PublicKey::parse_file(files[0].1.as_bytes(), "f").unwrap();
        assert_eq!(public, root.public());
        assert_eq!(files[1].0, "/etc/carapace/update-keys.json");
        assert_eq!(files[1].1, list.to_file_text());
        assert_eq!(files[2].0, "/etc/carapace/update.toml");
        assert_eq!(
            UpdateConfig::parse(&files[2].1).unwrap(),
            UpdateConfig::new("https://updates.example.com/x86-64")
        );

        // Another root key than the one that signed the list.
        let other = SecretKey::generate(KeyKind::Root)
            .unwrap()
            .public()
            .to_hex();
        std::fs::write(&recipe_path, with(&other, "keys.json")).unwrap();
        let err = Recipe::load(&recipe_path).unwrap_err().to_string();
        assert!(
            err.contains("[update] key_list") && err.contains("root key"),
            "{err}"
        );
        std::fs::write(&recipe_path, with(&root_hex, "missing.json")).unwrap();
        let err = Recipe::load(&recipe_path).unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
        let err = Recipe::parse(&with("abc", "keys.json")).unwrap_err();
        assert!(err.contains("[update] root_key"), "{err}");
        // The image's update files are the builder's to write.
        let file =
            format!("{GOOD}[[file]]\npath = \"/etc/carapace/update-keys.json\"\ntext = \"{{}}\"\n");
        assert!(
            Recipe::parse(&file)
                .unwrap_err()
                .contains("written by the builder")
        );
    }

    /// A [[model_pack]] must be signed by a key of the recipe's key list; its manifest joins
    /// the build id, and two packs of one name are refused.
    /// A [[skill]] folder is checked when the recipe loads, and its files' hashes join the
    /// recipe's text (a changed file makes a new build).
    #[test]
    fn a_skill_folder_is_checked_and_its_files_join_the_recipes_text() {
        let dir = tempfile::tempdir().unwrap();
        let skill = dir.path().join("skills/tea");
        std::fs::create_dir_all(&skill).unwrap();
        std::fs::write(
            skill.join("SKILL.md"),
            "---\nname: tea\ndescription: Brew tea.\n---\nSteep.\n",
        )
        .unwrap();
        let recipe_path = dir.path().join("r.toml");
        let load = |entries: &str| {
            std::fs::write(&recipe_path, format!("{GOOD}{entries}")).unwrap();
            Recipe::load(&recipe_path)
        };
        let (recipe, text) = load("[[skill]]\npath = \"skills/tea\"\n").unwrap();
        let (name, files) = recipe.skills[0].checked.as_ref().unwrap();
        assert_eq!(name, "tea");
        assert_eq!(files.len(), 1);
        assert!(text.contains("\nskill tea/SKILL.md "), "{text}");
        let twice = load("[[skill]]\npath = \"skills/tea\"\n[[skill]]\npath = \"skills/tea\"\n");
        let err = twice.unwrap_err().to_string();
        assert!(
            err.contains("another skill of the recipe is named tea"),
            "{err}"
        );
        std::fs::write(skill.join("run.sh"), "echo\n").unwrap();
        let err = load("[[skill]]\npath = \"skills/tea\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[skill]] skills/tea: skill tea: run.sh is code"),
            "{err}"
        );
        std::fs::remove_file(skill.join("run.sh")).unwrap();

        // Code runs only in the skill host service: a recipe without it cannot take any.
        std::fs::write(
            skill.join("skill.toml"),
            "[[tool]]\nname = \"brew\"\ndescription = \"Brews.\"\n",
        )
        .unwrap();
        std::fs::write(skill.join("skill.wasm"), b"\0asm").unwrap();
        let err = load("[[skill]]\npath = \"skills/tea\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("skill tea has code, which runs in the skill host service"),
            "{err}"
        );
        let service = "[[service]]\nname = \"skillhost\"\nexec = [\"/usr/bin/carapace-skillhost\", \
                       \"serve\", \"--client\", \"1000\"]\nuid = 1007\ngid = 1007\nmemory_max = 268435456\n";
        let (recipe, _) = load(&format!("{service}[[skill]]\npath = \"skills/tea\"\n")).unwrap();
        assert!(recipe.has_skill_host());
    }

    #[test]
    fn a_model_pack_is_checked_with_the_update_keys() {
        use carapace_update::{KeyKind, KeyList, ListedKey, SecretKey, SignedKeyList};
        let dir = tempfile::tempdir().unwrap();
        let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let stranger = SecretKey::from_seed(KeyKind::Signing, &[3; 32]);
        let listed = ListedKey {
            id: signing.id(),
            public_key: signing.public().to_hex(),
            not_after: None,
        };
        let list = KeyList {
            serial: 1,
            keys: vec![listed],
            revoked: vec![],
        };
        let list = SignedKeyList::sign(list, &root).unwrap();
        std::fs::write(dir.path().join("keys.json"), list.to_file_text()).unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("model.safetensors"), b"weights").unwrap();
        let pack = |key: &SecretKey, version: &str| {
            carapace_models::make_pack(&carapace_models::PackRequest {
                model_dir: &model,
                name: "tiny",
                version,
                capability: "embeddings",
                runs_on: carapace_models::RunsOn::Candle,
                key,
                out_dir: dir.path(),
            })
            .unwrap()
            .dir
        };
        pack(&signing, "1");
        pack(&stranger, "2");
        let recipe_path = dir.path().join("r.toml");
        let update = format!(
            "[update]\nroot_key = \"{}\"\nkey_list = \"keys.json\"\n\
             server = \"https://updates.example.com/x86-64\"\n",
            root.public().to_hex()
        );
        let with = |packs: &[&str]| {
            let entries: String = packs
                .iter()
                .map(|path| format!("[[model_pack]]\npath = \"{path}\"\n"))
                .collect();
            std::fs::write(&recipe_path, format!("{GOOD}{entries}{update}")).unwrap();
            Recipe::load(&recipe_path)
        };
        let (recipe, text) = with(&["tiny-1"]).unwrap();
        let verified = recipe.model_packs[0].verified.as_ref().unwrap();
        assert_eq!(verified.signed_by, signing.id());
        assert!(text.contains("\"capability\": \"embeddings\""), "{text}");
        let err = with(&["tiny-2"]).unwrap_err().to_string();
        assert!(
            err.contains("[[model_pack]] tiny-2: model pack ")
                && err.contains("its signature does not hold"),
            "{err}"
        );
        std::fs::rename(dir.path().join("tiny-2"), dir.path().join("copy")).unwrap();
        std::fs::remove_file(dir.path().join("copy/pack.sig")).unwrap();
        std::fs::copy(
            dir.path().join("tiny-1/pack.sig"),
            dir.path().join("copy/pack.sig"),
        )
        .unwrap();
        std::fs::copy(
            dir.path().join("tiny-1/pack.json"),
            dir.path().join("copy/pack.json"),
        )
        .unwrap();
        let err = with(&["tiny-1", "copy"]).unwrap_err().to_string();
        assert!(
            err.contains("[[model_pack]] copy: another model of the recipe is named tiny"),
            "{err}"
        );
        std::fs::write(
            &recipe_path,
            format!("{GOOD}[[model_pack]]\npath = \"tiny-1\"\n"),
        )
        .unwrap();
        let err = Recipe::load(&recipe_path).unwrap_err().to_string();
        assert!(err.contains("this recipe has no [update]"), "{err}");
    }

    #[test]
    fn a_skill_pack_is_unpacked_and_checked_with_the_update_keys() {
        use carapace_update::{KeyKind, SecretKey, Trust};
        let dir = tempfile::tempdir().unwrap();
        let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let stranger = SecretKey::from_seed(KeyKind::Signing, &[3; 32]);
        let trust = Trust::of_keys(&root, &[&signing]).unwrap();
        std::fs::write(
            dir.path().join("keys.json"),
            trust.signed_key_list().to_file_text(),
        )
        .unwrap();
        let tea = dir.path().join("src/tea");
        std::fs::create_dir_all(&tea).unwrap();
        std::fs::write(
            tea.join("SKILL.md"),
            "---\nname: tea\ndescription: Brew tea.\n---\nSteep 2 minutes.\n",
        )
        .unwrap();
        let good = crate::skill_pack::make(&tea, "1.0", &signing, dir.path()).unwrap();
        let packs = dir.path().join("packs");
        std::fs::create_dir(&packs).unwrap();
        std::fs::rename(&good, packs.join("tea-1.0.zip")).unwrap();
        crate::skill_pack::make(&tea, "2.0", &stranger, &packs).unwrap();
        let recipe_path = dir.path().join("r.toml");
        let update = format!(
            "[update]\nroot_key = \"{}\"\nkey_list = \"keys.json\"\n\
             server = \"https://updates.example.com/x86-64\"\n",
            root.public().to_hex()
        );
        let with = |entries: &str, update: &str| {
            std::fs::write(&recipe_path, format!("{GOOD}{entries}{update}")).unwrap();
            Recipe::load(&recipe_path)
        };
        let entry = |path: &str| format!("[[skill_pack]]\npath = \"{path}\"\n");
        let (recipe, text) = with(&entry("packs/tea-1.0.zip"), &update).unwrap();
        let (name, files) = recipe.skills[0].checked.as_ref().unwrap();
        assert_eq!(name, "tea");
        let inside: Vec<&str> = files.iter().map(|(inside, _)| inside.as_str()).collect();
        assert_eq!(inside, ["SKILL.md", "pack.json", "pack.sig"]);
        assert!(text.contains("\nskill_pack packs/tea-1.0.zip "), "{text}");
        assert!(text.contains("\nskill tea/SKILL.md "), "{text}");

        let err = with(&entry("packs/tea-2.0.zip"), &update)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[skill_pack]] packs/tea-2.0.zip: skill pack ")
                && err.contains("its signature does not hold"),
            "{err}"
        );
        let err = with(&entry("packs/tea-1.0.zip"), "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "skill packs are checked with the image's update keys, and this recipe \
                 has no [update]"
            ),
            "{err}"
        );
        let both = format!(
            "{}[[skill]]\npath = \"src/tea\"\n",
            entry("packs/tea-1.0.zip")
        );
        let err = with(&both, &update).unwrap_err().to_string();
        assert!(
            err.contains(
                "[[skill_pack]] packs/tea-1.0.zip: another skill of the recipe is named tea"
            ),
            "{err}"
        );
        // A [[skill]] folder that is a pack is checked as one: edited after signing, refused.
        let unpacked = dir.path().join("unpacked");
        std::fs::create_dir(&unpacked).unwrap();
        let bytes = std::fs::read(packs.join("tea-1.0.zip")).unwrap();
        carapace_skills::archive::unpack(&bytes, &unpacked).unwrap();
        std::fs::write(
            unpacked.join("tea/SKILL.md"),
            "---\nname: tea\ndescription: Brew tea.\n---\nSteep 9 minutes.\n",
        )
        .unwrap();
        let err = with("[[skill]]\npath = \"unpacked/tea\"\n", &update)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[skill]] unpacked/tea: skill pack ")
                && err.contains("SKILL.md has sha256 "),
            "{err}"
        );
    }

    /// GOOD with an [update] section (a made-up root key: `parse` checks its form only).
    fn with_update(settings: &str) -> String {
        let root = carapace_update::SecretKey::generate(KeyKind::Root).unwrap();
        format!(
            "{GOOD}[update]\nroot_key = \"{}\"\nkey_list = \"keys.json\"\n{settings}\n",
            root.public().to_hex()
        )
    }

    #[test]
    fn update_settings_have_defaults_and_go_into_update_toml() {
        let recipe = Recipe::parse(&with_update(
            "server = \"https://updates.example.com/x86-64\"",
        ))
        .unwrap();
        let config = recipe.update.as_ref().unwrap().update_config().unwrap();
        assert_eq!(
            config,
            UpdateConfig::new("https://updates.example.com/x86-64")
        );
        assert_eq!(
            (
                config.channel.as_str(),
                config.check_hours,
                config.quiet_hour,
                config.trial_stable_s
            ),
            ("stable", 24, 3, 60)
        );
        let recipe = Recipe::parse(&with_update(
            "server = \"https://u.example.com\"\nchannel = \"beta\"\ncheck_hours = 6\n\
             quiet_hour = 22\ntrial_stable_s = 30",
        ))
        .unwrap();
        let config = recipe.update.as_ref().unwrap().update_config().unwrap();
        assert_eq!(
            (
                config.channel.as_str(),
                config.check_hours,
                config.quiet_hour,
                config.trial_stable_s
            ),
            ("beta", 6, 22, 30)
        );
        assert!(
            config.render().contains("trial_stable_s = 30"),
            "{}",
            config.render()
        );
    }

    #[test]
    fn bad_update_settings_are_refused_with_the_field() {
        let err = Recipe::parse(&with_update("")).unwrap_err();
        assert!(err.contains("missing field `server`"), "{err}");
        for (settings, reason) in [
            ("server = \"http://updates.example.com\"", "https://"),
            ("server = \"https://10.1.2.3/x\"", "IP address"),
            (
                "server = \"https://updates.example.com/\"",
                "must not end with",
            ),
            (
                "server = \"https://u.example.com\"\nchannel = \"Stable\"",
                "lower-case",
            ),
            (
                "server = \"https://u.example.com\"\ncheck_hours = 0",
                "1 to 720",
            ),
            (
                "server = \"https://u.example.com\"\nquiet_hour = 24",
                "0 to 23",
            ),
            (
                "server = \"https://u.example.com\"\ntrial_stable_s = 20",
                "hardware watchdog",
            ),
            (
                "server = \"https://u.example.com\"\nchanel = \"beta\"",
                "chanel",
            ),
        ] {
            let err = Recipe::parse(&with_update(settings)).unwrap_err();
            assert!(
                err.contains("[update]") || err.contains("chanel"),
                "{settings}: {err}"
            );
            assert!(err.contains(reason), "{settings}: {err}");
        }
    }

    #[test]
    fn the_update_server_and_network_update_server_name_one_host() {
        let server = "server = \"https://updates.example.com/x86-64\"";
        let networked_update = |network: &str| {
            let update = with_update(server);
            let update = update.strip_prefix(GOOD).unwrap();
            networked(&format!("{update}[network]\n{network}\n"))
        };
        Recipe::parse(&networked_update("")).unwrap();
        Recipe::parse(&networked_update("update_server = \"updates.example.com\"")).unwrap();
        let err =
            Recipe::parse(&networked_update("update_server = \"other.example.com\"")).unwrap_err();
        assert!(
            err.contains("update_server") && err.contains("updates.example.com"),
            "{err}"
        );
    }

    #[test]
    fn the_image_version_is_the_recipes_or_the_workspaces() {
        let recipe = Recipe::parse(GOOD).unwrap();
        assert_eq!(recipe.image_version(), env!("CARGO_PKG_VERSION"));
        let versioned = GOOD.replace("[debian]", "version = \"0.1.1\"\n[debian]");
        assert_eq!(Recipe::parse(&versioned).unwrap().image_version(), "0.1.1");
        for bad in ["0.1.x", "", "1.2.3.4.5", "v1"] {
            let text = GOOD.replace("[debian]", &format!("version = \"{bad}\"\n[debian]"));
            let err = Recipe::parse(&text).unwrap_err();
            assert!(err.starts_with("version: "), "{bad}: {err}");
        }
    }

    #[test]
    fn a_file_source_is_read_from_beside_the_recipe_and_joins_the_build_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/bus.conf"), "<busconfig/>\n").unwrap();
        let recipe_path = dir.path().join("r.toml");
        let with =
            |file: &str| format!("{GOOD}[[file]]\npath = \"/etc/carapace/bus.conf\"\n{file}\n");
        std::fs::write(&recipe_path, with("source = \"files/bus.conf\"")).unwrap();
        let (recipe, text) = Recipe::load(&recipe_path).unwrap();
        assert_eq!(recipe.files[0].text, "<busconfig/>\n");
        assert!(text.ends_with("<busconfig/>\n"), "{text}");

        std::fs::write(&recipe_path, with("source = \"files/missing.conf\"")).unwrap();
        let err = Recipe::load(&recipe_path).unwrap_err().to_string();
        assert!(err.contains("missing.conf"), "{err}");
        let both = with("source = \"files/bus.conf\"\ntext = \"x\"");
        assert!(Recipe::parse(&both).unwrap_err().contains("not both"));
        assert!(
            Recipe::parse(&with(""))
                .unwrap_err()
                .contains("not neither")
        );
    }
}
