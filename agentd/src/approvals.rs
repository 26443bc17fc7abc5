//! Every new power is the owner's to grant. A tool that comes from outside the box (a skill's
//! code; later an MCP server's) runs only as the owner's policy for it says: ask the first time
//! (then always, once allowed), ask every time (the default for a tool that sends, spends or
//! deletes), always, or never. Asking does not hold the turn: the call is kept (in the store, so
//! a restart keeps it too), the model hears that the owner was asked, and the owner gets the
//! question with buttons. A press runs the kept call and gives its result to the model in a new
//! turn (agent.rs).

use std::sync::Mutex;

use carapace_im::{Button, ChannelKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::store::Store;

/// Settings keys: a tool's policy, and a call waiting for the owner.
const POLICY_PREFIX: &str = "tool-policy:";
const PENDING_PREFIX: &str = "tool-pending:";
/// Button data: `approve:<id>:<choice>` (at most 64 bytes: Telegram's limit).
const BUTTON_PREFIX: &str = "approve:";
/// The most of a call's arguments the question shows.
const SHOWN_ARGUMENTS: usize = 300;

/// What a tool needs before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// The box's own tools.
    NotNeeded,
    /// A tool from outside: asked the first time.
    FirstTime,
    /// A tool that sends, spends or deletes: asked every time.
    EveryTime,
}

/// The owner's policy for one tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    AskFirstTime,
    AskEveryTime,
    Always,
    Never,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::AskFirstTime => "ask the first time",
            Policy::AskEveryTime => "ask every time",
            Policy::Always => "always",
            Policy::Never => "never",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Policy::AskFirstTime => "ask-first",
            Policy::AskEveryTime => "ask",
            Policy::Always => "always",
            Policy::Never => "never",
        }
    }

    fn from_key(key: &str) -> Option<Policy> {
        [
            Policy::AskFirstTime,
            Policy::AskEveryTime,
            Policy::Always,
            Policy::Never,
        ]
        .into_iter()
        .find(|policy| policy.key() == key)
    }
}

/// The policy in force for `tool`: the owner's, else the default for what it needs.
pub fn policy(store: &Store, tool: &str, approval: Approval) -> Result<Policy, Error> {
    let set = store.settings(&format!("{POLICY_PREFIX}{tool}"))?;
    Ok(
        match (set.as_deref().and_then(Policy::from_key), approval) {
            (_, Approval::NotNeeded) => Policy::Always,
            (Some(policy), _) => policy,
            (None, Approval::FirstTime) => Policy::AskFirstTime,
            (None, Approval::EveryTime) => Policy::AskEveryTime,
        },
    )
}

pub fn set_policy(store: &Store, tool: &str, policy: Policy) -> Result<(), Error> {
    store.put_setting(&format!("{POLICY_PREFIX}{tool}"), Some(policy.key()))
}

/// Back to the default for what the tool needs (a skill replaced or removed).
pub fn forget_policy(store: &Store, tool: &str) -> Result<(), Error> {
    store.put_setting(&format!("{POLICY_PREFIX}{tool}"), None)
}

/// A call waiting for the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    pub tool: String,
    pub arguments: Value,
    pub channel: ChannelKind,
    pub chat: String,
    /// Asked every time: the question offers "once" and "always".
    pub every_time: bool,
}

/// The calls a turn asked about; the turn's answer carries their questions.
#[derive(Default)]
pub struct Asked(Mutex<Vec<Pending>>);

impl Asked {
    pub fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What to do with a call now.
pub enum Decision {
    Run,
    /// Not run; the text is for the model.
    NotRun(String),
}

/// Checks `tool`'s policy; when the owner must be asked, keeps the call and notes the
/// question in `asked`.
pub fn check(
    store: &Store,
    asked: &Asked,
    channel: ChannelKind,
    chat: &str,
    tool: &str,
    approval: Approval,
    arguments: &Value,
) -> Result<Decision, Error> {
    let every_time = match policy(store, tool, approval)? {
        Policy::Always => return Ok(Decision::Run),
        Policy::Never => {
            return Ok(Decision::NotRun(format!(
                "Not run: the owner does not allow {tool} (they can change that with /tools)."
            )));
        }
        Policy::AskFirstTime => false,
        Policy::AskEveryTime => true,
    };
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).map_err(Error::QuestionId)?;
    let pending = Pending {
        id: hex::encode(id),
        tool: tool.to_string(),
        arguments: arguments.clone(),
        channel,
        chat: chat.to_string(),
        every_time,
    };
    let text = serde_json::to_string(&pending).map_err(|e| unreadable(e.to_string()))?;
    store.put_setting(&format!("{PENDING_PREFIX}{}", pending.id), Some(&text))?;
    asked
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pending);
    Ok(Decision::NotRun(format!(
        "Not run yet: the owner was asked in the chat to allow {tool}. It runs when they allow \
         it, and you will get its result then. Tell them what you asked for and why."
    )))
}

/// The question for the owner, with its buttons.
pub fn question(pending: &Pending) -> (String, Vec<Button>) {
    let mut shown = pending.arguments.to_string();
    if shown.len() > SHOWN_ARGUMENTS {
        let mut cut = SHOWN_ARGUMENTS;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push('…');
    }
    let text = format!(
        "Allow {} to run? It would be called with {shown}",
        pending.tool
    );
    let button = |label: &str, choice: Choice| Button {
        label: label.to_string(),
        data: format!("{BUTTON_PREFIX}{}:{}", pending.id, choice.key()),
    };
    let buttons = if pending.every_time {
        vec![
            button("Allow once", Choice::Once),
            button("Always allow", Choice::Always),
            button("Never", Choice::Never),
        ]
    } else {
        vec![
            button("Allow", Choice::Always),
            button("Never", Choice::Never),
        ]
    };
    (text, buttons)
}

/// The owner's answer to a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Once,
    Always,
    Never,
}

impl Choice {
    fn key(self) -> &'static str {
        match self {
            Choice::Once => "once",
            Choice::Always => "always",
            Choice::Never => "never",
        }
    }
}

fn unreadable(reason: String) -> Error {
    Error::StoreData {
        table: "settings (a call waiting for the owner)",
        reason,
    }
}

/// Reads a button's data: the pending call's id and the choice, if it is one of ours.
pub fn read_button(data: &str) -> Option<(&str, Choice)> {
    let (id, choice) = data.strip_prefix(BUTTON_PREFIX)?.split_once(':')?;
    let choice = [Choice::Once, Choice::Always, Choice::Never]
        .into_iter()
        .find(|c| c.key() == choice)?;
    Some((id, choice))
}

/// Takes the pending call `id` out of the store (a second press finds nothing) and applies
/// the owner's `choice` to the tool's policy. `None`: it was answered already.
pub fn answer(store: &Store, id: &str, choice: Choice) -> Result<Option<Pending>, Error> {
    let key = format!("{PENDING_PREFIX}{id}");
    let Some(text) = store.settings(&key)? else {
        return Ok(None);
    };
    store.put_setting(&key, None)?;
    let pending: Pending = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    match choice {
        Choice::Never => set_policy(store, &pending.tool, Policy::Never)?,
        Choice::Always => set_policy(store, &pending.tool, Policy::Always)?,
        Choice::Once => {}
    }
    Ok(Some(pending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_first_time_tool_is_asked_once_and_then_runs() {
        let (_dir, store) = store();
        let asked = Asked::default();
        let arguments = json!({"place": "Oslo"});
        let check = |asked: &Asked| {
            check(
                &store,
                asked,
                ChannelKind::Telegram,
                "42",
                "weather__forecast",
                Approval::FirstTime,
                &arguments,
            )
            .unwrap()
        };
        let Decision::NotRun(told) = check(&asked) else {
            panic!("ran without asking")
        };
        assert!(
            told.starts_with("Not run yet: the owner was asked"),
            "{told}"
        );
        let pending = asked.take();
        let (text, buttons) = question(&pending[0]);
        assert_eq!(
            text,
            "Allow weather__forecast to run? It would be called with {\"place\":\"Oslo\"}"
        );
        let labels: Vec<&str> = buttons.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["Allow", "Never"]);
        assert!(
            buttons
                .iter()
                .all(|b| b.data.len() <= carapace_im::BUTTON_DATA_MAX)
        );

        let (id, choice) = read_button(&buttons[0].data).unwrap();
        let answered = answer(&store, id, choice).unwrap().unwrap();
        assert_eq!(answered.arguments, arguments);
        assert!(
            answer(&store, id, choice).unwrap().is_none(),
            "answered twice"
        );
        assert!(matches!(check(&asked), Decision::Run));
        assert!(asked.take().is_empty());
    }

    #[test]
    fn a_tool_that_writes_is_asked_every_time_and_never_means_never() {
        let (_dir, store) = store();
        let asked = Asked::default();
        let arguments = json!({"to": "Bob"});
        let check = || {
            check(
                &store,
                &asked,
                ChannelKind::Telegram,
                "42",
                "mail__send",
                Approval::EveryTime,
                &arguments,
            )
            .unwrap()
        };
        assert!(matches!(check(), Decision::NotRun(_)));
        let first = asked.take().remove(0);
        let (_, buttons) = question(&first);
        let labels: Vec<&str> = buttons.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["Allow once", "Always allow", "Never"]);
        let (id, choice) = read_button(&buttons[0].data).unwrap();
        assert_eq!(choice, Choice::Once);
        answer(&store, id, choice).unwrap().unwrap();
        // Once is once: the next call asks again.
        assert!(matches!(check(), Decision::NotRun(_)));
        let second = asked.take().remove(0);
        answer(&store, &second.id, Choice::Never).unwrap().unwrap();
        let Decision::NotRun(told) = check() else {
            panic!("ran after never")
        };
        assert!(
            told.contains("the owner does not allow mail__send"),
            "{told}"
        );
        assert!(asked.take().is_empty(), "asked again after never");
        assert_eq!(
            policy(&store, "mail__send", Approval::EveryTime).unwrap(),
            Policy::Never
        );
        assert_eq!(read_button("approve:zz:maybe"), None);
        assert_eq!(read_button("other"), None);
    }
}
