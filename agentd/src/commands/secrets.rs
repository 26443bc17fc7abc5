//! `/secret`: the secrets skills declare and whether the owner gave each; `/secret SKILL NAME
//! VALUE` gives one, `/forget_secret SKILL NAME` takes it back (owner only). A value goes only
//! into the store and that skill's requests to its own hosts (skill_secrets.rs): never into
//! the chat's history, the model's requests, the audit log or an answer.

use carapace_im::ChannelKind;
use carapace_skills::Skill;

use crate::agent::Agent;
use crate::error::Error;
use crate::skill_secrets;

/// `/secret [SKILL NAME VALUE]`, sent on `channel`; `rest` is the text after the command, the
/// value as sent. The answer, and whether a value was kept (its message then leaves the chat
/// where the channel allows: Telegram).
pub fn secret(
    agent: &mut Agent,
    owner: bool,
    channel: ChannelKind,
    args: &[String],
    rest: &str,
    now: u64,
) -> Result<(String, bool), Error> {
    let not_kept = |text: String| Ok((text, false));
    if !owner {
        return not_kept("Only the owner can do that.".into());
    }
    let (skill, name) = match args {
        [] => return not_kept(list(agent)?),
        [skill, name, _, ..] => (skill, name),
        _ => return not_kept("Send /secret SKILL NAME VALUE; /secret alone lists them.".into()),
    };
    let Some(skill) = with_secrets(agent, skill) else {
        return not_kept(format!(
            "No skill {skill} takes secrets; /secret lists those that do."
        ));
    };
    let value = super::after_words(rest, 2);
    if let Err(why) = skill_secrets::give(&agent.store, &skill, name, value)? {
        return not_kept(why);
    }
    agent.record(
        "secret",
        &format!("the owner gave skill {} its secret {name}", skill.name),
        now,
    );
    let hosts = skill
        .code
        .as_ref()
        .map_or(String::new(), |c| c.hosts.join(", "));
    let message = match channel {
        ChannelKind::Telegram => "I deleted your message with the value from this chat.",
        ChannelKind::Feishu => {
            "Recall your message with the value from this chat: Feishu lets only its sender do \
             that."
        }
    };
    Ok((
        format!(
            "Kept {name} for skill {}: only its requests to {hosts} carry it, and its code never \
             sees it. {message}",
            skill.name
        ),
        true,
    ))
}

/// `/forget_secret SKILL NAME`.
pub fn forget(agent: &mut Agent, owner: bool, args: &[String], now: u64) -> Result<String, Error> {
    if !owner {
        return Ok("Only the owner can do that.".into());
    }
    let [skill, name] = args else {
        return Ok("Send /forget_secret SKILL NAME.".into());
    };
    if !skill_secrets::forget(&agent.store, skill, name)? {
        return Ok(format!("Skill {skill} has no secret {name} kept."));
    }
    agent.record(
        "secret",
        &format!("the owner took back skill {skill}'s secret {name}"),
        now,
    );
    Ok(format!("Forgot {name} of skill {skill}."))
}

fn list(agent: &Agent) -> Result<String, Error> {
    let mut text = String::new();
    for skill in agent.skills.catalog.skills() {
        let status = skill_secrets::status(&agent.store, skill)?;
        if status.is_empty() {
            continue;
        }
        let names: Vec<String> = status
            .iter()
            .map(|(name, given)| match given {
                true => format!("{name} (kept)"),
                false => format!("{name} (not given)"),
            })
            .collect();
        text.push_str(&format!("\n{}: {}", skill.name, names.join(", ")));
    }
    Ok(match text.is_empty() {
        true => "No skill here takes secrets.".into(),
        false => format!("Secrets the skills take:{text}\nGive one: /secret SKILL NAME VALUE"),
    })
}

fn with_secrets(agent: &Agent, name: &str) -> Option<Skill> {
    agent
        .skills
        .catalog
        .skills()
        .iter()
        .find(|skill| {
            skill.name == name && skill.code.as_ref().is_some_and(|c| !c.secrets.is_empty())
        })
        .cloned()
}
