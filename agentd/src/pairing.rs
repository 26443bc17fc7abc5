//! Who may talk to the box. A message from someone who is not a user is read only for a
//! pairing code; without a valid one it gets no answer and runs nothing. Codes are one-time
//! and kept as SHA-256 hashes, so the store on a lost disk hands out no code; guesses are
//! counted and, past [`ATTEMPTS_PER_HOUR`] from one sender, not even checked.

use std::collections::HashMap;

use carapace_im::{Content, Incoming};
use carapace_owner::PairingCode;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::store::{Invite, Role, Store, User};

pub const ATTEMPTS_PER_HOUR: u32 = 5;
/// An invitation (`/pair`) lapses after an hour; the first owner code never does (a box may
/// sit in a drawer before it is plugged in).
pub const INVITE_SECS: u64 = 3600;
const WINDOW_SECS: u64 = 3600;
/// Senders remembered at once; a flood of new senders beyond it is throttled as a whole, so
/// strangers cannot grow agentd's memory.
const SENDERS_MAX: usize = 1024;

/// What a stranger's message led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Paired(User),
    /// A wrong or missing code (counted; no answer).
    Refused,
    /// Over the limit: not even checked.
    Throttled,
}

#[derive(Default)]
pub struct Guard {
    attempts: HashMap<String, (u32, u64)>,
}

pub fn code_key(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// The code a message presents: Telegram's deep link sends `/start CODE` (or
/// `/start@bot CODE`); on Feishu the owner sends the code itself.
pub fn presented_code(content: &Content) -> Option<&str> {
    let Content::Text(text) = content else {
        return None;
    };
    let text = text.trim();
    let candidate = match text.strip_prefix("/start") {
        Some(rest) => {
            let rest = rest.strip_prefix('@').map_or(rest, |bot| {
                bot.split_once(char::is_whitespace).map_or("", |(_, r)| r)
            });
            rest.trim()
        }
        None => text,
    };
    PairingCode::parse(candidate).ok().map(|_| candidate)
}

impl Guard {
    pub fn check(&mut self, store: &Store, message: &Incoming, now: u64) -> Result<Outcome, Error> {
        let sender = crate::store::user_key(message.channel, &message.sender);
        if !self.attempts.contains_key(&sender) && self.attempts.len() >= SENDERS_MAX {
            self.attempts
                .retain(|_, (_, since)| now.saturating_sub(*since) < WINDOW_SECS);
            if self.attempts.len() >= SENDERS_MAX {
                store.bump("pairing_throttled")?;
                return Ok(Outcome::Throttled);
            }
        }
        let (count, since) = self.attempts.entry(sender.clone()).or_insert((0, now));
        if now.saturating_sub(*since) >= WINDOW_SECS {
            (*count, *since) = (0, now);
        }
        if *count >= ATTEMPTS_PER_HOUR {
            store.bump("pairing_throttled")?;
            return Ok(Outcome::Throttled);
        }
        let Some(code) = presented_code(&message.content) else {
            *count += 1;
            store.bump("pairing_refused")?;
            return Ok(Outcome::Refused);
        };
        let key = code_key(code);
        let invite = store
            .codes()?
            .into_iter()
            .find(|(stored, invite)| *stored == key && !expired(invite, now));
        let Some((_, invite)) = invite else {
            *count += 1;
            store.bump("pairing_refused")?;
            return Ok(Outcome::Refused);
        };
        let user = User {
            channel: message.channel,
            id: message.sender.clone(),
            name: message.sender_name.clone(),
            role: invite.role,
            since: now,
        };
        if invite.role == Role::Owner {
            // A new owner takes over; the old one stays as a user the new owner may remove.
            for mut old in store.users()?.into_iter().filter(|u| u.role == Role::Owner) {
                old.role = Role::User;
                store.put_user(&old)?;
            }
        }
        store.redeem(&key, &user)?;
        if invite.role == Role::Owner {
            store.put_setting(OWNER_CODE, None)?;
        }
        self.attempts.remove(&sender);
        Ok(Outcome::Paired(user))
    }
}

fn expired(invite: &Invite, now: u64) -> bool {
    invite.role == Role::User && now.saturating_sub(invite.created) > INVITE_SECS
}

/// The settings row that keeps the first owner code in clear while the box is unpaired, so
/// each start can show it again. An unpaired box guards nothing: whoever holds it can reset it.
pub const OWNER_CODE: &str = "owner_code";

/// The code that makes its sender the first owner: the one stored, or a new one.
pub fn first_owner_code(store: &Store, now: u64) -> Result<PairingCode, Error> {
    if let Some(text) = store.settings(OWNER_CODE)?
        && let Ok(code) = PairingCode::parse(&text)
    {
        return Ok(code);
    }
    let code = new_code(store, Role::Owner, now)?;
    store.put_setting(OWNER_CODE, Some(code.as_str()))?;
    Ok(code)
}

/// Stores a new code for `role` and returns it (only its hash is kept).
pub fn new_code(store: &Store, role: Role, now: u64) -> Result<PairingCode, Error> {
    let code = PairingCode::generate()?;
    store_code(store, &code, role, now)?;
    Ok(code)
}

pub fn store_code(store: &Store, code: &PairingCode, role: Role, now: u64) -> Result<(), Error> {
    store.add_code(&code_key(code.as_str()), &Invite { role, created: now })
}

#[cfg(test)]
mod tests {
    use carapace_im::ChannelKind;

    use super::*;

    fn message(sender: &str, text: &str) -> Incoming {
        Incoming {
            channel: ChannelKind::Telegram,
            id: "1".into(),
            chat: sender.into(),
            sender: sender.into(),
            message_id: String::new(),
            sender_name: format!("person {sender}"),
            content: Content::Text(text.into()),
        }
    }

    #[test]
    fn the_deep_link_and_the_bare_code_both_count() {
        let code = "AbCdEfGhIjKlMnOp";
        for text in [
            format!("/start {code}"),
            format!("/start@my_bot {code}"),
            code.to_string(),
            format!("  {code}\n"),
        ] {
            assert_eq!(
                presented_code(&Content::Text(text.clone())),
                Some(code),
                "{text:?}"
            );
        }
        assert_eq!(presented_code(&Content::Text("/start".into())), None);
        assert_eq!(presented_code(&Content::Text("hello there".into())), None);
    }

    #[test]
    fn the_first_with_the_code_is_owner_and_the_code_is_void() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let code = new_code(&store, Role::Owner, 0).unwrap();
        assert!(!store.codes().unwrap()[0].0.contains(code.as_str()));
        let mut guard = Guard::default();
        let link = format!("/start {}", code.as_str());
        assert!(matches!(
            guard.check(&store, &message("42", &link), 10).unwrap(),
            Outcome::Paired(User {
                role: Role::Owner,
                ..
            })
        ));
        assert_eq!(
            guard.check(&store, &message("66", &link), 11).unwrap(),
            Outcome::Refused
        );
        assert!(store.user(ChannelKind::Telegram, "66").unwrap().is_none());
    }

    #[test]
    fn guessing_is_throttled_then_allowed_again_after_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let code = new_code(&store, Role::Owner, 0).unwrap();
        let mut guard = Guard::default();
        for _ in 0..ATTEMPTS_PER_HOUR {
            assert_eq!(
                guard.check(&store, &message("66", "hello"), 1).unwrap(),
                Outcome::Refused
            );
        }
        let right = format!("/start {}", code.as_str());
        assert_eq!(
            guard.check(&store, &message("66", &right), 2).unwrap(),
            Outcome::Throttled
        );
        assert_eq!(store.count("pairing_refused").unwrap(), 5);
        assert!(matches!(
            guard
                .check(&store, &message("66", &right), 2 + WINDOW_SECS)
                .unwrap(),
            Outcome::Paired(_)
        ));
    }

    #[test]
    fn an_invitation_lapses_after_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let code = new_code(&store, Role::User, 0).unwrap();
        let mut guard = Guard::default();
        let text = format!("/start {}", code.as_str());
        assert_eq!(
            guard
                .check(&store, &message("7", &text), INVITE_SECS + 1)
                .unwrap(),
            Outcome::Refused
        );
    }
}
