//! `/share_photos [on|off]`: whether the model may see the photos sent in this chat. By default
//! a photo stays on the box and the model gets only the text the box read in it; the owner can
//! let the images themselves go to the model, one chat at a time. Each decision is in the audit
//! log, and so is each photo that goes.

use carapace_im::ChannelKind;

use crate::agent::Agent;
use crate::error::Error;
use crate::store::Store;

/// The setting's key in the store, per chat.
fn key(channel: ChannelKind, chat: &str) -> String {
    format!("share_photos:{}:{chat}", channel.name())
}

/// Since when (Unix seconds) the model may see the photos of this chat; None: it may not.
pub fn photos_shared(
    store: &Store,
    channel: ChannelKind,
    chat: &str,
) -> Result<Option<u64>, Error> {
    Ok(store
        .settings(&key(channel, chat))?
        .and_then(|since| since.parse().ok()))
}

/// The owner's command in this chat. `by` names the owner for the audit log.
pub fn share_photos(
    agent: &mut Agent,
    channel: ChannelKind,
    chat: &str,
    by: &str,
    word: Option<&str>,
    now: u64,
) -> Result<String, Error> {
    let shared = photos_shared(&agent.store, channel, chat)?;
    let place = format!("{} chat {chat}", channel.name());
    let text = match (word, shared) {
        (Some("on"), Some(_)) => "The model already sees the photos sent in this chat.".into(),
        (Some("on"), None) => {
            agent
                .store
                .put_setting(&key(channel, chat), Some(&now.to_string()))?;
            agent.record(
                "share",
                &format!("{by} let the model see the photos sent in {place}"),
                now,
            );
            "From now on the model sees the photos sent in this chat, beside the text I read in \
             them. /share_photos off keeps them on the box again."
                .into()
        }
        (Some("off"), None) => "Photos sent in this chat already stay on the box.".into(),
        (Some("off"), Some(_)) => {
            agent.store.put_setting(&key(channel, chat), None)?;
            agent.record(
                "share",
                &format!("{by} kept the photos sent in {place} on the box again"),
                now,
            );
            "Photos sent in this chat stay on the box again: the model gets only the text I \
             read in them."
                .into()
        }
        (_, Some(_)) => "The model sees the photos sent in this chat (/share_photos off to stop \
                         it)."
            .into(),
        (_, None) => "Photos sent in this chat stay on the box: the model gets only the text I \
                      read in them (/share_photos on lets it see them)."
            .into(),
    };
    Ok(text)
}
