//! Commands that work without the model: `/status`, `/help`, `/pair`, `/users`, `/update`,
//! `/reboot`, `/settings`, `/audit`, `/logs`, and the memories' `/remember <text>`,
//! `/recall [query]` and `/forget_memory <number>` (commands/memories.rs; they need the local
//! inference engine, not the LLM), `/models`, `/add_model LINK` and `/remove_model NAME` (the
//! owner's model packs: model_packs.rs), `/share_photos [on|off]` (commands/sharing.rs),
//! the skills' and MCP servers' `/tools` and `/mcp`, `/skills`, `/install_skill` (agent.rs runs
//! it: it answers with buttons) and `/remove_skill`
//! (skill_install.rs: a skill is installed by sending its zip), and the skills' `/secret` and
//! `/forget_secret` (commands/secrets.rs). They answer even when every LLM provider is down. `/say` and a photo
//! captioned `/read` also need only the engine; agent.rs answers them, since their answers are
//! a voice note and a photo's text.

mod mcp;
mod memories;
mod secrets;
mod sharing;
mod tools;

pub use sharing::photos_shared;

use crate::agent::{Agent, Effect};
use crate::error::Error;
use crate::pairing;
use crate::store::{Role, User};

/// How long `/reboot confirm` may follow `/reboot` (or the model's `reboot` tool).
pub const REBOOT_CONFIRM_SECS: u64 = 60;
/// The store counter holding when a reboot was last asked for (0: not asked).
pub const REBOOT_ASKED_AT: &str = "reboot_asked_at";
/// What `/logs` shows: about one chat message.
const LOG_LINES: usize = 40;
const LOG_BYTES: usize = 3500;
/// Audit entries `/audit` shows.
const AUDIT_SHOWN: usize = 10;

#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
    /// The text after the command's name, as sent (trimmed): values with spaces in quotes
    /// (`/settings set wifi.add "My  Home" "…"`) keep them exactly.
    pub rest: String,
}

/// The menu the IM client shows (Telegram's setMyCommands).
pub const MENU: &[(&str, &str)] = &[
    ("status", "The box: version, uptime, memory, network"),
    ("help", "What I can do"),
    ("pair", "Invite someone (owner only)"),
    ("users", "Who may talk to me"),
    ("update", "Check for an update; install, reboot into it"),
    ("logs", "The box's last log lines"),
    ("reboot", "Restart the box (owner only)"),
    (
        "recovery_key",
        "The key that opens /data if it locks (owner only)",
    ),
    ("settings", "Show or change settings (owner only)"),
    (
        "audit",
        "Recent audit entries, and whether the log verifies",
    ),
    ("remember", "Keep a note: /remember <text>"),
    (
        "recall",
        "Find kept notes by meaning: /recall <what>; alone, the latest",
    ),
    ("forget_memory", "Drop a kept note: /forget_memory <number>"),
    ("say", "Hear the box's voice: /say <text> comes back spoken"),
    (
        "skills",
        "The skills on the box; send a skill's zip to install one",
    ),
    (
        "install_skill",
        "Fetch a skill to install: /install_skill LINK (a GitHub folder or a zip)",
    ),
    (
        "remove_skill",
        "Remove a skill you installed: /remove_skill NAME",
    ),
    ("tools", "Skills' tools and whether they may run"),
    ("mcp", "Remote MCP servers: /mcp add NAME URL (owner only)"),
    (
        "secret",
        "Give a skill a secret: /secret SKILL NAME VALUE (owner only)",
    ),
    (
        "forget_secret",
        "Take a skill's secret back: /forget_secret SKILL NAME",
    ),
    (
        "read",
        "Send a photo captioned /read: the text in it, read on the box",
    ),
    (
        "models",
        "The box's own models: what each does, and where it runs",
    ),
    (
        "add_model",
        "Add a signed model pack: /add_model LINK (owner only)",
    ),
    (
        "remove_model",
        "Remove a model you added: /remove_model NAME (owner only)",
    ),
    (
        "share_photos",
        "Let the model see this chat's photos, not only their text: on or off (owner only)",
    ),
];

/// `/name@bot arg arg` → the command, for the names in [`MENU`] and `/start`.
pub fn parse(text: &str) -> Option<Command> {
    let text = text.trim();
    let after_slash = text.strip_prefix('/')?;
    let mut words = after_slash.split_whitespace();
    let first = words.next()?;
    let name = first
        .split('@')
        .next()
        .unwrap_or(first)
        .to_ascii_lowercase();
    if name != "start" && !MENU.iter().any(|(known, _)| *known == name) {
        return None;
    }
    Some(Command {
        name,
        args: words.map(str::to_string).collect(),
        rest: after_words(after_slash, 1).to_string(),
    })
}

/// `text` without its first `count` words and the spaces after them.
pub(crate) fn after_words(text: &str, count: usize) -> &str {
    let mut rest = text.trim_start();
    for _ in 0..count {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

/// `/update` checks; `/update install [force]` downloads and writes the other slot;
/// `/update reboot` starts it; `/update status` shows what the update service is doing.
/// Installing and rebooting are the owner's.
async fn update(agent: &Agent, command: &Command, owner: bool) -> String {
    use board_support::update_control::Request;
    let word = command.args.first().map(String::as_str).unwrap_or("check");
    let force = command.args.get(1).map(String::as_str) == Some("force");
    let request = match word {
        "check" => Request::Check { force },
        "status" => Request::Status {},
        "install" | "reboot" if !owner => return "Only the owner can do that.".into(),
        "install" => Request::Install { force },
        "reboot" => Request::Reboot {},
        _ => {
            return "Send /update to check, /update install [force] to download and write it, \
                    /update reboot to start it, /update status to see what is happening."
                .into();
        }
    };
    match agent.updates.ask(&request).await {
        Ok(reply) => {
            let told = crate::updates::take_new_events(&agent.store, &reply.status.events);
            let status = &reply.status;
            let mut lines = Vec::new();
            if let Some(error) = &reply.error {
                lines.push(format!("Not done: {error}."));
            }
            lines.extend(told);
            if lines.is_empty() || word == "status" {
                let slot = status
                    .slot
                    .map_or(String::from("?"), |slot| slot.to_string());
                let trial = if status.on_trial { ", on trial" } else { "" };
                lines.push(format!(
                    "This box runs {} (slot {slot}{trial}); the update service is {}.",
                    status.version, status.activity
                ));
            }
            lines.join("\n")
        }
        Err(error) => format!("No update service: {error}."),
    }
}

/// Runs `command`, sent by `user` in `chat` (the channel is the user's).
pub async fn run(
    agent: &mut Agent,
    user: &User,
    chat: &str,
    command: &Command,
    now: u64,
) -> Result<(String, Effect), Error> {
    let owner = user.role == Role::Owner;
    let only_owner = || Ok(("Only the owner can do that.".to_string(), Effect::None));
    let text = match command.name.as_str() {
        "start" => format!(
            "You are already paired ({}). Send /help.",
            role_name(user.role)
        ),
        "help" => help(),
        "status" => {
            let status = crate::device::status(&agent.identity).await;
            format!(
                "{}\nusers: {}, replies waiting: {}, pairing attempts refused: {} (throttled: {})",
                crate::device::summary(&status),
                agent.store.users()?.len(),
                agent.store.outbox_len()?,
                agent.store.count("pairing_refused")?,
                agent.store.count("pairing_throttled")?
            )
        }
        "pair" if !owner => return only_owner(),
        "pair" => pair(agent, command, now)?,
        "users" => users(agent, user, command, owner, now)?,
        "update" => update(agent, command, owner).await,
        "reboot" if !owner => return only_owner(),
        "reboot" => {
            let confirmed = command.args.first().map(String::as_str) == Some("confirm");
            let asked = agent.store.count(REBOOT_ASKED_AT)?;
            if confirmed && asked > 0 && now.saturating_sub(asked) <= REBOOT_CONFIRM_SECS {
                agent.store.put_count(REBOOT_ASKED_AT, 0)?;
                agent.record("reboot", &format!("confirmed by {}", user.key()), now);
                return Ok((
                    "Restarting now; I will be back in a minute.".into(),
                    Effect::Reboot,
                ));
            }
            agent.store.put_count(REBOOT_ASKED_AT, now)?;
            format!("Send /reboot confirm within {REBOOT_CONFIRM_SECS} s to restart the box.")
        }
        "settings" if !owner => return only_owner(),
        "settings" => return settings(agent, command),
        "audit" => audit(agent)?,
        "remember" => memories::remember(agent, command, now).await?,
        "recall" => memories::recall(agent, command).await?,
        "forget_memory" => memories::forget(agent, command)?,
        "models" => models(agent).await,
        "add_model" | "remove_model" if !owner => return only_owner(),
        "add_model" => match crate::model_packs::parse_link(&command.args) {
            Ok(url) => {
                let host = url.host_str().unwrap_or_default().to_string();
                return Ok((
                    format!(
                        "Fetching the model pack from {host}. I will say here when it is checked \
                         and ready; I answer other messages meanwhile."
                    ),
                    Effect::AddModel { url },
                ));
            }
            Err(why) => why,
        },
        "remove_model" => remove_model(agent, user, &command.args, now).await,
        "skills" => crate::skill_install::list(agent),
        "remove_skill" => crate::skill_install::remove(agent, owner, &command.args, now).await?,
        "tools" => tools::tools(agent, owner, &command.args, now)?,
        "mcp" => mcp::mcp(agent, owner, &command.args, now).await?,
        "secret" => {
            let (text, kept) = secrets::secret(
                agent,
                owner,
                user.channel,
                &command.args,
                &command.rest,
                now,
            )?;
            // Telegram lets the bot take the message with the value out of the chat.
            if kept && user.channel == carapace_im::ChannelKind::Telegram {
                return Ok((text, Effect::DeleteCommandMessage));
            }
            text
        }
        "forget_secret" => secrets::forget(agent, owner, &command.args, now)?,
        "recovery_key" if !owner => return only_owner(),
        "recovery_key" => recovery_key(agent, user, now),
        "share_photos" if !owner => return only_owner(),
        "share_photos" => sharing::share_photos(
            agent,
            user.channel,
            chat,
            &format!("the owner ({} {})", user.channel.name(), user.id),
            command.args.first().map(String::as_str),
            now,
        )?,
        // A photo captioned /read, and /say, are answered by agent.rs (they carry media).
        "read" => "Send a photo with the caption /read, and I will send back the text in it, \
                   read on the box."
            .into(),
        "logs" => {
            let socket = std::path::Path::new(crate::logs::RECENT_SOCKET);
            match crate::logs::recent(socket, LOG_LINES, LOG_BYTES).await {
                Ok(text) if text.is_empty() => "The log is empty.".into(),
                Ok(text) => text,
                Err(error) => format!("No log lines: {error}."),
            }
        }
        _ => help(),
    };
    Ok((text, Effect::None))
}

/// `/recovery_key`: the key that opens an encrypted /data when the TPM will not (the disk
/// helper's recovery_key.rs), and how to use it. Every showing is audited.
fn recovery_key(agent: &mut Agent, user: &User, now: u64) -> String {
    let key = match std::fs::read_to_string(&agent.recovery_key_file) {
        Ok(key) => key,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return "This box has no recovery key: its /data is not encrypted (see /status), or \
                    was encrypted before boxes made one (a factory reset gives a new /data with \
                    one)."
                .into();
        }
        Err(error) => return format!("The recovery key could not be read: {error}."),
    };
    agent.record(
        "recovery_key",
        &format!("/data's recovery key shown to {}", user.key()),
        now,
    );
    format!(
        "/data's recovery key: {}\nKeep it off this box (a password manager, or on paper): with \
         the disk, it opens /data. If the box ever says /data is locked (after a firmware update, \
         or with Secure Boot changed), put the key in a file named carapace-recovery-key.txt in \
         the root of the box's boot partition (the ESP) and restart it: /data opens, its key is \
         sealed to the box again and the file is deleted.",
        key.trim()
    )
}

/// `/models`: the local engine's models, one line each, with where each runs and why there,
/// and a failed load's reason.
async fn models(agent: &Agent) -> String {
    let models = match agent.inference.models().await {
        Ok(models) => models,
        Err(error) => return format!("No local models to list: {error}."),
    };
    let mut text = String::from("The box's own models (nothing sent to them leaves it):");
    for model in models {
        let capability = model.capability.replace('_', " ");
        let state = if model.loaded { "loaded" } else { "not loaded" };
        let added = match (model.source.as_str(), &model.version) {
            ("added_pack", Some(version)) => format!(" {version}, added by you"),
            ("image_pack", Some(version)) => format!(" {version}, a pack in the image"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "\n{}{added}: {capability}, on the {} ({}), {state}",
            model.id, model.device, model.device_reason
        ));
        if let Some(error) = model.last_error {
            text.push_str(&format!("; its last load failed: {error}"));
        }
    }
    text
}

/// `/remove_model NAME`: a pack the owner added, out of the engine and off /data.
async fn remove_model(agent: &mut Agent, user: &User, args: &[String], now: u64) -> String {
    let [name] = args else {
        return "Send /remove_model NAME; /models lists the models you added.".into();
    };
    match agent.inference.remove_pack(name).await {
        Ok(version) => {
            agent.record(
                "model",
                &format!("model pack {name} {version} removed for {}", user.key()),
                now,
            );
            format!("Removed the model {name} {version}.")
        }
        Err(error) => format!("I could not remove {name}: {error}."),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::User => "user",
    }
}

fn help() -> String {
    let mut text = String::from("Talk to me in plain words, or use a command:\n");
    for (name, what) in MENU {
        text.push_str(&format!("/{name} - {what}\n"));
    }
    text.push_str("/settings set <name> <value> - change one setting; I keep it only if I can still reach the model and this chat\n");
    text.push_str("/settings set wifi.add \"SSID\" \"passphrase\" - add a Wi-Fi network (wifi.remove \"SSID\" removes one)");
    text
}

fn pair(agent: &mut Agent, command: &Command, now: u64) -> Result<String, Error> {
    let role = match command.args.first().map(String::as_str) {
        Some("owner") => Role::Owner,
        _ => Role::User,
    };
    let code = pairing::new_code(&agent.store, role, now)?;
    agent.record("pairing", &format!("{} code made", role_name(role)), now);
    let mut text = match role {
        Role::Owner => "A code that makes its sender the owner (you become a user):".to_string(),
        Role::User => format!(
            "An invitation, valid for {} minutes and for one person:",
            pairing::INVITE_SECS / 60
        ),
    };
    if let Some(telegram) = &agent.settings.telegram {
        text.push_str(&format!("\n{}", code.telegram_link(&telegram.bot)));
    }
    if agent.settings.feishu.is_some() {
        text.push_str(&format!(
            "\nOn Feishu, send the bot this code: {}",
            code.as_str()
        ));
    }
    Ok(text)
}

fn users(
    agent: &mut Agent,
    user: &User,
    command: &Command,
    owner: bool,
    now: u64,
) -> Result<String, Error> {
    if command.args.first().map(String::as_str) == Some("remove") {
        if !owner {
            return Ok("Only the owner can do that.".into());
        }
        let Some(key) = command.args.get(1) else {
            return Ok("Say whom: /users remove telegram:12345 (as /users lists them).".into());
        };
        if *key == user.key() {
            return Ok(
                "You cannot remove yourself; give the box a new owner with /pair owner first."
                    .into(),
            );
        }
        return Ok(match agent.store.remove_user(key)? {
            true => {
                agent.record("pairing", &format!("{key} removed by the owner"), now);
                format!("{key} removed.")
            }
            false => format!("There is no user {key}; /users lists them."),
        });
    }
    let mut lines = Vec::new();
    for known in agent.store.users()? {
        lines.push(format!(
            "{} {} ({})",
            known.key(),
            known.name,
            role_name(known.role)
        ));
    }
    Ok(lines.join("\n"))
}

fn settings(agent: &mut Agent, command: &Command) -> Result<(String, Effect), Error> {
    match command.args.as_slice() {
        [] => Ok((agent.settings.summary(), Effect::None)),
        [set, key, value @ ..] if set == "set" && !value.is_empty() => {
            // The value as sent, spaces and quotes included.
            let value = after_words(&command.rest, 2);
            match agent.settings.with(key, value) {
                Ok(settings) => {
                    // The whole list, by SSID (a passphrase is never repeated).
                    let changed = if key.starts_with("wifi.") {
                        let ssids: Vec<&str> =
                            settings.wifi.iter().map(|n| n.ssid.as_str()).collect();
                        format!("Wi-Fi networks ({})", ssids.join(", "))
                    } else {
                        key.clone()
                    };
                    Ok((
                        format!("Trying the new {changed}; I keep the change only if I can still reach the model and this chat."),
                        Effect::TrySettings {
                            settings: Box::new(settings),
                            changed,
                        },
                    ))
                }
                Err(error) => Ok((format!("Not changed: {error}"), Effect::None)),
            }
        }
        _ => Ok((
            "Use /settings to list them, or /settings set <name> <value>, e.g. /settings set llm.0.model gpt-4o-mini".into(),
            Effect::None,
        )),
    }
}

fn audit(agent: &Agent) -> Result<String, Error> {
    let path = agent.audit.path();
    let bytes = std::fs::read(path).map_err(|source| Error::File {
        what: format!("reading {}", path.display()),
        source,
    })?;
    Ok(match carapace_audit::verify(&bytes) {
        Ok(report) => {
            let mut text = format!(
                "The audit log verifies: {} entries signed by {}, last hash {}.",
                report.entries.len(),
                report.key,
                &report.last_hash[..16]
            );
            for entry in report.entries.iter().rev().take(AUDIT_SHOWN).rev() {
                text.push_str(&format!(
                    "\n#{} {} {}: {}",
                    entry.seq, entry.time, entry.kind, entry.detail
                ));
            }
            text
        }
        Err(failure) => format!(
            "The audit log does NOT verify: {failure}. Export it and keep it for inspection."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_the_bot_name() {
        assert_eq!(
            parse("/status@my_box_bot"),
            Some(Command {
                name: "status".into(),
                args: vec![],
                rest: String::new(),
            })
        );
        assert_eq!(
            parse(" /settings set llm.0.model gpt-5 "),
            Some(Command {
                name: "settings".into(),
                args: vec!["set".into(), "llm.0.model".into(), "gpt-5".into()],
                rest: "set llm.0.model gpt-5".into(),
            })
        );
        let command = parse("/settings@my_box_bot  set wifi.add \"My  Home\"  \"a b\" ").unwrap();
        assert_eq!(command.rest, "set wifi.add \"My  Home\"  \"a b\"");
        assert_eq!(after_words(&command.rest, 2), "\"My  Home\"  \"a b\"");
        assert_eq!(after_words("set", 2), "");
        let command = parse("/remember@my_box_bot  the key is\nunder the pot ").unwrap();
        assert_eq!(command.name, "remember");
        assert_eq!(command.rest, "the key is\nunder the pot");
        assert_eq!(parse("/Recall").unwrap().rest, "");
        assert_eq!(
            parse("/forget_memory 7").unwrap().args,
            vec!["7".to_string()]
        );
        assert_eq!(parse("/unknown"), None);
        assert_eq!(parse("status"), None);
    }
}
