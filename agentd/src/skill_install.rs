//! Installing a skill the owner sends in the chat as a zip: one built by `carapace skill build`,
//! or an instruction-only skill from OpenClaw's or Anthropic's collections, zipped as it is.
//!
//! The zip is unpacked into a staging folder on /data and checked as the builder checks a
//! recipe's skill (carapace_skills::archive, check_folder). The owner is shown what it declares
//! (its tools, the hosts it would reach, the secrets it takes) with Install and Decline
//! buttons; nothing of it is used before Install. Then its hosts join netd's allowlist and the
//! folder moves into skills/installed/ with one rename (an exchange, when it replaces an older
//! version): a power cut leaves the old skill or the new, never half of one. The offer is kept
//! in the store, so it survives a restart; staging folders no offer names are removed at start.
//! Each offer, install, refusal and removal goes into the audit log.
//!
//! A zip that is a signed skill pack (`carapace skill pack`: carapace_skills::pack) is checked
//! with the image's update keys before it is offered: one that does not check out (a file
//! changed, a key the box does not trust) is refused; one that does is offered with its version
//! and key. A zip without a signature is offered as what it is, unsigned.

use std::path::Path;

use board_support::atomic_file::sync_dir;
use carapace_im::{Button, FileRef, Outgoing};
use carapace_skills::pack::{PACK_MANIFEST, PACK_SIGNATURE};
use carapace_skills::{Declaration, Origin, Skill, archive};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::{Agent, Media};
use crate::error::Error;
use crate::skill_fetch::{self, Fetched};
use crate::tools::skill_tool_name;

/// Settings key of an offer waiting for the owner's answer.
const OFFER_PREFIX: &str = "skill-offer:";
/// Button data: `skill:<offer>:install` or `skill:<offer>:decline`.
const BUTTON_PREFIX: &str = "skill:";

/// A checked skill in staging, waiting for the owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Offer {
    /// The first 16 hex digits of the zip's sha256: its staging folder's name.
    id: String,
    name: String,
    sha256: String,
    /// "version V signed by key K", when it is a signed pack that checked out.
    #[serde(default)]
    signed: Option<String>,
}

/// What a skill's signature says of it.
enum Provenance {
    /// A signed pack whose signature and files checked out.
    Signed(carapace_skills::pack::VerifiedPack),
    Unsigned,
    /// A signed pack on a box without update keys to check it with.
    Unchecked(String),
}

impl Provenance {
    /// Checks the staged folder `dir`: Err says why a signed pack does not check out.
    fn of(agent: &Agent, dir: &Path) -> Result<Provenance, String> {
        if !carapace_skills::pack::is_pack(dir) {
            return Ok(Provenance::Unsigned);
        }
        let keys = &agent.skills.update_keys;
        let trust = match keys.load() {
            Ok(trust) => trust,
            Err(_) if !keys.root_key.exists() => {
                return Ok(Provenance::Unchecked("its image has no update keys".into()));
            }
            Err(error) => return Ok(Provenance::Unchecked(error.to_string())),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        match carapace_skills::pack::verify(dir, &trust, now) {
            Ok(verified) => Ok(Provenance::Signed(verified)),
            Err(carapace_skills::Error::Pack { problem, .. }) => Err(format!(
                "it is a signed skill pack that does not check out: {problem}"
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    /// For the offer and the audit log.
    fn signed(&self) -> Option<String> {
        match self {
            Provenance::Signed(pack) => Some(format!(
                "version {} signed by key {}",
                pack.version, pack.signed_by
            )),
            _ => None,
        }
    }

    /// What the owner is told of it.
    fn shown(&self) -> String {
        match self {
            Provenance::Signed(pack) => format!(
                "It is a signed pack, version {}, signed by key {}, which this box trusts for \
                 its updates.",
                pack.version, pack.signed_by
            ),
            Provenance::Unsigned => {
                "It is not signed: install it only if you trust where it came from.".into()
            }
            Provenance::Unchecked(why) => format!(
                "It is signed, but this box cannot check the signature ({why}): install it only \
                 if you trust where it came from."
            ),
        }
    }
}

/// Whether a document is offered as a skill: a zip.
pub fn is_zip(file_name: &str) -> bool {
    file_name.to_ascii_lowercase().ends_with(".zip")
}

/// The owner sent the zip `file`: unpacks and checks it, and asks the owner to install it.
pub async fn offer<M: Media>(
    agent: &mut Agent,
    media: &M,
    channel: carapace_im::ChannelKind,
    file: &FileRef,
    file_name: &str,
    now: u64,
) -> Result<Outgoing, Error> {
    match media.download(channel, file).await {
        Ok(bytes) => offer_fetched(agent, Fetched::Zip(bytes), file_name, now),
        Err(error) => Ok(text(format!("I could not fetch {file_name}: {error}"))),
    }
}

/// `/install_skill LINK`: fetches the skill a GitHub folder or zip link points to, through
/// netd's allowlist for the fetch only (skill_fetch.rs), and offers it as a sent zip is.
pub async fn offer_link(
    agent: &mut Agent,
    owner: bool,
    args: &[String],
    now: u64,
) -> Result<Outgoing, Error> {
    if !owner {
        return Ok(text("Only the owner can do that.".into()));
    }
    let [link_text] = args else {
        return Ok(text(
            "Send /install_skill LINK: a GitHub folder (https://github.com/OWNER/REPO/tree/\
             BRANCH/FOLDER) or an https link to a skill's zip."
                .into(),
        ));
    };
    let link = match skill_fetch::parse(link_text) {
        Ok(link) => link,
        Err(why) => return Ok(text(format!("I cannot fetch that: {why}."))),
    };
    let Some(access) = agent.mcp.clone() else {
        return Ok(text(
            "This agent runs without netd to let it out; send the skill's zip instead.".into(),
        ));
    };
    let api = agent.skills.github_api.clone();
    let hosts = link.hosts(&api);
    let mut allowed = Ok(());
    for (host, port) in &hosts {
        if let Err(error) = access.netd.allow(host, *port).await {
            allowed = Err(format!("the box may not reach {host}: {error}"));
            break;
        }
    }
    let fetched = match allowed {
        Ok(()) => link.fetch(&access.http, &api).await,
        Err(why) => Err(why),
    };
    // The fetch's hosts leave the allowlist again, unless a skill or server needs them.
    crate::reach::release(agent, hosts).await?;
    match fetched {
        Ok(fetched) => offer_fetched(agent, fetched, link_text, now),
        Err(why) => {
            agent.record(
                "skill",
                &format!("the owner asked to install {link_text}; it could not be fetched: {why}"),
                now,
            );
            Ok(text(format!("I could not fetch {link_text}: {why}")))
        }
    }
}

/// Unpacks and checks what the owner sent or linked to (`file_name`: the zip's name or the
/// link), and asks the owner to install it.
fn offer_fetched(
    agent: &mut Agent,
    fetched: Fetched,
    file_name: &str,
    now: u64,
) -> Result<Outgoing, Error> {
    // A zip is named by its bytes' sha256; a folder by that of its files' list and sha256s.
    let sha256 = match &fetched {
        Fetched::Zip(bytes) => hex::encode(Sha256::digest(bytes)),
        Fetched::Folder(files) => {
            let mut listing = Sha256::new();
            let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
            sorted.sort();
            for (inside, bytes) in sorted {
                listing.update(format!(
                    "{inside}\0{}\n",
                    hex::encode(Sha256::digest(bytes))
                ));
            }
            hex::encode(listing.finalize())
        }
    };
    let id = sha256[..16].to_string();
    let staging = agent.skills.staging_dir().join(&id);
    let refused = |agent: &mut Agent, why: String| -> Result<Outgoing, Error> {
        let _ = std::fs::remove_dir_all(&staging);
        agent.record(
            "skill",
            &format!("the owner sent {file_name} (sha256 {sha256}); not a skill to install: {why}"),
            now,
        );
        Ok(text(format!(
            "{file_name} cannot be installed as a skill: {why}"
        )))
    };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|source| Error::File {
        what: format!("creating {}", staging.display()),
        source,
    })?;
    let placed = match &fetched {
        Fetched::Zip(bytes) => archive::unpack(bytes, &staging),
        Fetched::Folder(files) => archive::place(files, &staging),
    };
    let name = match placed {
        Ok(name) => name,
        Err(error) => return refused(agent, error.to_string()),
    };
    // The builder's advice names the folder; here it is the owner's, not the staging one.
    let unstaged = |why: String| why.replace(&format!("{}/", staging.display()), "");
    let provenance = match Provenance::of(agent, &staging.join(&name)) {
        Ok(provenance) => provenance,
        Err(why) => return refused(agent, unstaged(why)),
    };
    // A signature this box could not check does not label the skill as signed once installed.
    if let Provenance::Unchecked(_) = provenance {
        for file in [PACK_MANIFEST, PACK_SIGNATURE] {
            let _ = std::fs::remove_file(staging.join(&name).join(file));
        }
    }
    if let Err(error) = carapace_skills::check_folder(&staging.join(&name)) {
        return refused(agent, unstaged(error.to_string()));
    }
    let Ok(loaded) = load_staged(&staging, &name) else {
        return refused(agent, "its folder could not be read back".into());
    };
    if let Some(why) = clash(agent, &loaded)? {
        return refused(agent, why);
    }
    let replaced = agent.skills.catalog.get(&name).cloned();
    let offer = Offer {
        id: id.clone(),
        name: name.clone(),
        sha256: sha256.clone(),
        signed: provenance.signed(),
    };
    let kept = serde_json::to_string(&offer).map_err(|e| unreadable(e.to_string()))?;
    agent
        .store
        .put_setting(&format!("{OFFER_PREFIX}{id}"), Some(&kept))?;
    agent.record(
        "skill",
        &format!(
            "the owner sent skill {name} (sha256 {sha256}, {}): {}; asked the owner to install \
             it",
            provenance.signed().unwrap_or_else(|| "unsigned".into()),
            declared(&loaded)
        ),
        now,
    );
    let mut question = format!("Install skill {name}? {}\n", loaded.description);
    question.push_str(&shown(&loaded));
    question.push_str(&format!("\n{}", provenance.shown()));
    if let Some(replaced) = replaced {
        question.push_str(&format!("\nIt replaces the {name} you installed before"));
        question.push_str(&match (&replaced.pack, &provenance) {
            (Some(old), Provenance::Signed(_)) => format!(" (version {}).", old.version),
            (Some(old), Provenance::Unsigned) => format!(
                ", which was a signed pack (version {}); this one is not signed.",
                old.version
            ),
            (Some(old), Provenance::Unchecked(_)) => format!(
                ", which was a signed pack (version {}); this one's signature cannot be checked.",
                old.version
            ),
            (None, _) => ".".into(),
        });
    }
    let button = |label: &str, verb: &str| Button {
        label: label.into(),
        data: format!("{BUTTON_PREFIX}{id}:{verb}"),
    };
    Ok(Outgoing::Choice {
        text: question,
        buttons: vec![button("Install", "install"), button("Decline", "decline")],
    })
}

/// Reads a button's data: the offer and whether to install, if it is one of ours.
pub fn read_button(data: &str) -> Option<(&str, bool)> {
    let (id, verb) = data.strip_prefix(BUTTON_PREFIX)?.split_once(':')?;
    match verb {
        "install" => Some((id, true)),
        "decline" => Some((id, false)),
        _ => None,
    }
}

/// The owner's answer to offer `id`: installs the skill or drops it.
pub async fn answer(agent: &mut Agent, id: &str, install: bool, now: u64) -> Result<String, Error> {
    let key = format!("{OFFER_PREFIX}{id}");
    let Some(kept) = agent.store.settings(&key)? else {
        return Ok("That question was answered already.".into());
    };
    agent.store.put_setting(&key, None)?;
    let offer: Offer = serde_json::from_str(&kept).map_err(|e| unreadable(e.to_string()))?;
    let staging = agent.skills.staging_dir().join(&offer.id);
    let name = offer.name.clone();
    if !install {
        let _ = std::fs::remove_dir_all(&staging);
        agent.record("skill", &format!("the owner declined skill {name}"), now);
        return Ok(format!("Skill {name} was not installed."));
    }
    let failed = |agent: &mut Agent, why: String| -> Result<String, Error> {
        let _ = std::fs::remove_dir_all(&staging);
        agent.record(
            "skill",
            &format!("installing skill {name} failed: {why}"),
            now,
        );
        Ok(format!(
            "Skill {name} was not installed: {why}. Send the zip again to retry."
        ))
    };
    let Ok(skill) = load_staged(&staging, &name) else {
        return failed(agent, "its unpacked folder is gone".into());
    };
    // Checked again: the box may have changed since the question (an MCP server added).
    if let Some(why) = clash(agent, &skill)? {
        return failed(agent, why);
    }
    let hosts = skill
        .code
        .as_ref()
        .map(|code| code.hosts.clone())
        .unwrap_or_default();
    for host in &hosts {
        let Some(access) = agent.mcp.clone() else {
            return failed(agent, "this agent runs without netd to let it out".into());
        };
        if let Err(error) = access.netd.allow(host, crate::reach::HTTPS_PORT).await {
            return failed(agent, format!("the box may not reach {host}: {error}"));
        }
    }
    let old_tools = tool_names(agent.skills.catalog.get(&name));
    if let Err(error) = move_into_place(
        &staging.join(&name),
        &agent.skills.installed_dir().join(&name),
    ) {
        return failed(agent, error);
    }
    let _ = std::fs::remove_dir_all(&staging);
    // A new version's tools are asked about afresh: the owner approved what the old code did.
    for tool in old_tools {
        crate::approvals::forget_policy(&agent.store, &tool)?;
    }
    agent.skills.reload(&mut agent.tools);
    agent.record(
        "skill",
        &format!(
            "the owner installed skill {name} (sha256 {}{})",
            offer.sha256,
            offer
                .signed
                .as_ref()
                .map(|signed| format!(", {signed}"))
                .unwrap_or_default()
        ),
        now,
    );
    Ok(installed_text(&skill))
}

/// `/skills`: each skill, where it came from, and what it may do.
pub fn list(agent: &Agent) -> String {
    let skills = agent.skills.catalog.skills();
    if skills.is_empty() {
        return "No skills yet. Send me a skill's zip (made with `carapace skill build`, or an \
                instruction-only skill zipped), or /install_skill with a GitHub folder link, to \
                install one."
            .into();
    }
    let mut text = String::from("Skills:");
    for skill in skills {
        let mut origin = match skill.origin {
            Origin::Image => "in the image".to_string(),
            Origin::Owner => "installed by you".to_string(),
        };
        if let Some(pack) = &skill.pack {
            origin.push_str(&format!(
                ", signed pack {} by key {}",
                pack.version, pack.key_id
            ));
        }
        text.push_str(&format!("\n{} ({origin}): {}", skill.name, declared(skill)));
    }
    text.push_str(
        "\nSend a skill's zip to install one; /remove_skill NAME removes one you installed.",
    );
    text
}

/// `/remove_skill NAME`: removes a skill the owner installed, with its scratch files, its
/// secrets and its tools' policies.
pub async fn remove(
    agent: &mut Agent,
    owner: bool,
    args: &[String],
    now: u64,
) -> Result<String, Error> {
    if !owner {
        return Ok("Only the owner can do that.".into());
    }
    let [name] = args else {
        return Ok("Send /remove_skill NAME; /skills lists them.".into());
    };
    let Some(skill) = agent.skills.catalog.get(name).cloned() else {
        return Ok(format!("There is no skill {name}; /skills lists them."));
    };
    if skill.origin == Origin::Image {
        return Ok(format!(
            "{name} is part of the image; only an update removes it."
        ));
    }
    // Out of the catalog's folder first (one rename), then deleted at leisure.
    let trash = agent.skills.staging_dir().join(format!("removed-{name}"));
    let _ = std::fs::remove_dir_all(&trash);
    let folder = agent.skills.installed_dir().join(name);
    rename_synced(&folder, &trash).map_err(|source| Error::File {
        what: format!("moving {} aside", folder.display()),
        source,
    })?;
    let _ = std::fs::remove_dir_all(&trash);
    // Its scratch files are the skill host service's to remove.
    if let Some(host) = agent.skills.host.clone()
        && let Err(error) = host.forget(name).await
    {
        eprintln!("skills: the scratch files of {name} stay: {error}");
    }
    for secret in skill.code.iter().flat_map(|code| &code.secrets) {
        crate::skill_secrets::forget(&agent.store, name, secret)?;
    }
    for tool in tool_names(Some(&skill)) {
        crate::approvals::forget_policy(&agent.store, &tool)?;
    }
    agent.skills.reload(&mut agent.tools);
    // Its hosts leave netd's allowlist unless another skill or a server reaches them.
    let reached = skill
        .code
        .iter()
        .flat_map(|code| &code.hosts)
        .map(|host| (host.clone(), crate::reach::HTTPS_PORT))
        .collect();
    crate::reach::release(agent, reached).await?;
    agent.record("skill", &format!("the owner removed skill {name}"), now);
    Ok(format!("Removed {name}, with its files and secrets."))
}

/// Removes staging folders that no offer waits on: what a restart interrupted.
pub fn clean_staging(agent: &Agent) {
    let Ok(entries) = std::fs::read_dir(agent.skills.staging_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        let waiting = agent
            .store
            .settings(&format!("{OFFER_PREFIX}{id}"))
            .is_ok_and(|offer| offer.is_some());
        if !waiting {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The staged folder as the catalog will load it.
fn load_staged(staging: &Path, name: &str) -> Result<Skill, ()> {
    let (catalog, problems) = carapace_skills::Catalog::load_all(&[(staging, Origin::Owner)]);
    match (catalog.get(name), problems.is_empty()) {
        (Some(skill), true) => Ok(skill.clone()),
        _ => Err(()),
    }
}

/// Why `skill` cannot join this box, if it cannot: its name is the image's, an MCP server's
/// (their tools share the `<name>__` prefix), or it has code and the image no skill host.
fn clash(agent: &Agent, skill: &Skill) -> Result<Option<String>, Error> {
    let name = &skill.name;
    if agent
        .skills
        .catalog
        .get(name)
        .is_some_and(|present| present.origin == Origin::Image)
    {
        return Ok(Some(format!(
            "the image has a skill named {name}; rename yours (its SKILL.md's name and folder)"
        )));
    }
    if crate::mcp_servers::load(&agent.store)?
        .iter()
        .any(|server| &server.name == name)
    {
        return Ok(Some(format!(
            "an MCP server is named {name}; rename the skill or /mcp remove {name}"
        )));
    }
    if skill.code.is_some() && agent.skills.host.is_none() {
        return Ok(Some(
            "it has code, and this image has no skill host to run it".into(),
        ));
    }
    Ok(None)
}

/// What a skill declares, on one line (audit log, /skills).
fn declared(skill: &Skill) -> String {
    let Some(code) = &skill.code else {
        return "instructions only".into();
    };
    let list = |items: &[String]| match items.is_empty() {
        true => "none".to_string(),
        false => items.join(", "),
    };
    let tools: Vec<String> = code.tools.iter().map(|t| t.name.clone()).collect();
    format!(
        "tools {}; hosts {}; secrets {}",
        list(&tools),
        list(&code.hosts),
        list(&code.secrets)
    )
}

/// What the owner is asked about: each tool and how it is asked for, the hosts, the secrets.
fn shown(skill: &Skill) -> String {
    let Some(code) = &skill.code else {
        return "It has no code: instructions for me, read when I use it.".into();
    };
    let mut text = String::from("Its tools (each runs only as you allow):");
    for tool in &code.tools {
        let asked = match tool.writes {
            true => "asks you every time: it sends, spends or deletes",
            false => "asks you the first time",
        };
        text.push_str(&format!(
            "\n- {} ({asked}): {}",
            skill_tool_name(&skill.name, &tool.name),
            tool.description.trim()
        ));
    }
    text.push_str(&match code.hosts.is_empty() {
        true => "\nIt reaches no host on the internet.".to_string(),
        false => format!("\nIt would reach, over HTTPS: {}", code.hosts.join(", ")),
    });
    if !code.secrets.is_empty() {
        let secrets: Vec<String> = code
            .secrets
            .iter()
            .map(|name| match code.secret_only_for(name) {
                Some(hosts) => format!("{name} (sent only to {})", hosts.join(", ")),
                None => name.clone(),
            })
            .collect();
        text.push_str(&format!(
            "\nSecrets it takes (you give them; its code never sees them): {}",
            secrets.join(", ")
        ));
    }
    text
}

fn installed_text(skill: &Skill) -> String {
    let name = &skill.name;
    let Some(code) = &skill.code else {
        return format!("Installed {name}.");
    };
    let mut text = format!("Installed {name}. Its tools run only as you allow; /tools lists them.");
    for secret in &code.secrets {
        text.push_str(&format!(
            "\nGive it {secret}: /secret {name} {secret} <value>"
        ));
    }
    text
}

fn tool_names(skill: Option<&Skill>) -> Vec<String> {
    skill
        .and_then(|skill| skill.code.as_ref().map(|code| (skill, code)))
        .map(|(skill, code): (&Skill, &Declaration)| {
            code.tools
                .iter()
                .map(|tool| skill_tool_name(&skill.name, &tool.name))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts the checked folder `from` at `to`: a rename, or an exchange with the version there
/// (left at `from`, for the caller to remove). Synced, so the move survives a power cut.
fn move_into_place(from: &Path, to: &Path) -> Result<(), String> {
    let parent = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("could not create {}: {e}", parent.display()))?;
    let flags = match to.exists() {
        true => rustix::fs::RenameFlags::EXCHANGE,
        false => rustix::fs::RenameFlags::NOREPLACE,
    };
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags)
        .map_err(|e| format!("could not move it into {}: {e}", parent.display()))?;
    sync_dir(parent).map_err(|e| format!("could not sync {}: {e}", parent.display()))
}

/// Renames `from` out of its directory and syncs that directory: what must last is the entry
/// leaving it (atomic_file::rename_durably syncs the destination's).
fn rename_synced(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(from.parent().unwrap_or(Path::new("/")))
}

fn text(text: String) -> Outgoing {
    Outgoing::Text(text)
}

fn unreadable(reason: String) -> Error {
    Error::StoreData {
        table: "settings (a skill offered for install)",
        reason,
    }
}
