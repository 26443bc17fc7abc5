//! A schema-2.0 event read as an [`Incoming`] message, or skipped. `im.message.receive_v1`
//! carries messages, `card.action.trigger` button presses (`card_action.rs`); every other
//! event (and a message or press we cannot read, or one without a sender's open_id) is skipped
//! and acknowledged at once: there is nothing for the core to store.
//!
//! Feishu names no sender in the event (a name needs the contact API and its own scope), so
//! the open_id stands in as the display name, as Telegram's user id does when a user has none.

use serde::Deserialize;

use super::card_action::{self, CARD_ACTION};
use super::frame::Answer;
use crate::{ChannelKind, Content, FileRef, Incoming};

/// The event that carries a message sent to the bot.
const MESSAGE_RECEIVED: &str = "im.message.receive_v1";

/// What one event means for the core, and what its acknowledgement answers.
pub(super) struct Read {
    /// What the core stores; None: nothing, so the event is acknowledged at once.
    pub message: Option<Incoming>,
    pub answer: Answer,
}

#[derive(Deserialize)]
struct Event {
    header: EventHeader,
    event: serde_json::Value,
}

#[derive(Deserialize)]
struct EventHeader {
    event_type: String,
    /// Unique per event; what a press is known by (a message has its own id).
    #[serde(default)]
    event_id: String,
}

#[derive(Deserialize)]
struct MessageEvent {
    sender: Sender,
    message: Message,
}

#[derive(Deserialize)]
struct Sender {
    sender_id: Option<UserIds>,
}

#[derive(Deserialize)]
struct UserIds {
    open_id: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    message_id: String,
    chat_id: String,
    message_type: String,
    /// A JSON document in a string; its shape depends on `message_type`.
    content: String,
    #[serde(default)]
    mentions: Option<Vec<Mention>>,
}

/// Who an `@_user_N` mention token in a text stands for.
#[derive(Deserialize)]
struct Mention {
    key: String,
    name: String,
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

#[derive(Deserialize)]
struct Image {
    image_key: String,
}

#[derive(Deserialize)]
struct Audio {
    file_key: String,
    /// Milliseconds.
    #[serde(default)]
    duration: u64,
}

#[derive(Deserialize)]
struct File {
    file_key: String,
    #[serde(default)]
    file_name: String,
}

pub(super) fn read(payload: &[u8]) -> Read {
    let skipped = Read {
        message: None,
        answer: Answer::Event,
    };
    let Ok(event) = serde_json::from_slice::<Event>(payload) else {
        return skipped;
    };
    match event.header.event_type.as_str() {
        MESSAGE_RECEIVED => Read {
            message: message(event.event),
            answer: Answer::Event,
        },
        // Every press is answered as a callback, one we skip too: the owner's client waits
        // for the answer.
        CARD_ACTION => Read {
            message: card_action::read(&event.header.event_id, event.event),
            answer: Answer::Callback,
        },
        _ => skipped,
    }
}

fn message(event: serde_json::Value) -> Option<Incoming> {
    let MessageEvent { sender, message } = serde_json::from_value(event).ok()?;
    let open_id = sender.sender_id?.open_id.filter(|id| !id.is_empty())?;
    if message.message_id.is_empty() || message.chat_id.is_empty() {
        return None;
    }
    Some(Incoming {
        channel: ChannelKind::Feishu,
        id: message.message_id.clone(),
        chat: message.chat_id.clone(),
        sender: open_id.clone(),
        message_id: message.message_id.clone(),
        sender_name: open_id,
        content: content(&message),
    })
}

fn content(message: &Message) -> Content {
    let kind = message.message_type.as_str();
    let raw = message.content.as_str();
    let file = |key: &str| FileRef {
        id: key.to_string(),
        message_id: message.message_id.clone(),
    };
    let read = match kind {
        "text" => serde_json::from_str::<Text>(raw)
            .ok()
            .map(|text| Content::Text(resolve_mentions(&text.text, message))),
        "image" => serde_json::from_str::<Image>(raw)
            .ok()
            .map(|image| Content::Photo {
                file: file(&image.image_key),
                caption: String::new(),
            }),
        "audio" => serde_json::from_str::<Audio>(raw)
            .ok()
            .map(|audio| Content::Voice {
                file: file(&audio.file_key),
                seconds: u32::try_from(audio.duration.div_ceil(1000)).unwrap_or(u32::MAX),
            }),
        "file" => serde_json::from_str::<File>(raw)
            .ok()
            .map(|document| Content::Document {
                file: file(&document.file_key),
                name: document.file_name,
                caption: String::new(),
            }),
        _ => None,
    };
    read.unwrap_or_else(|| Content::Unsupported(kind.to_string()))
}

/// The text with its `@_user_N` mention tokens resolved. Mentions at the start address the bot
/// in a group ("@Bot /status"); they are dropped, so a command reads as it does in a private
/// chat. Later ones become "@name".
fn resolve_mentions(text: &str, message: &Message) -> String {
    let mentions = message.mentions.as_deref().unwrap_or_default();
    let mut rest = text.trim_start();
    // "@_user_1" must not match the start of "@_user_12": a key ends where no digit follows.
    let leading = |rest: &str, key: &str| {
        rest.strip_prefix(key)
            .filter(|after| !key.is_empty() && !after.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::len)
    };
    while let Some(left) = mentions
        .iter()
        .find_map(|mention| leading(rest, &mention.key))
    {
        rest = rest[rest.len() - left..].trim_start();
    }
    let mut resolved = rest.to_string();
    // Longest keys first, so "@_user_1" does not eat the start of "@_user_12".
    let mut by_length: Vec<&Mention> = mentions.iter().filter(|m| !m.key.is_empty()).collect();
    by_length.sort_by_key(|mention| std::cmp::Reverse(mention.key.len()));
    for mention in by_length {
        resolved = resolved.replace(&mention.key, &format!("@{}", mention.name));
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(message_type: &str, content: Value, mentions: Value) -> Vec<u8> {
        json!({
            "schema": "2.0",
            "header": {
                "event_id": "5e3702a84e847582be8db7fb73283c02",
                "event_type": "im.message.receive_v1",
                "create_time": "1608725989000",
                "token": "rvaYgkR7Yqr2p9oZx1Cp",
                "app_id": "cli_9f5343c580712544",
                "tenant_key": "2ca1d211f64f6438"
            },
            "event": {
                "sender": {
                    "sender_id": {"union_id": "on_8ed6aa67826108097d9ee143816345", "user_id": null, "open_id": "ou_84aad35d084aa403a838cf73ee18467"},
                    "sender_type": "user",
                    "tenant_key": "736588c9260f175e"
                },
                "message": {
                    "message_id": "om_5ce6d572455d361153b7cb51da133945",
                    "root_id": "", "parent_id": "",
                    "create_time": "1609073151345", "update_time": "1609073151345",
                    "chat_id": "oc_5ce6d572455d361153b7xx51da133945",
                    "chat_type": "group",
                    "message_type": message_type,
                    "content": content.to_string(),
                    "mentions": mentions,
                    "user_agent": "Mozilla/5.0"
                }
            }
        })
        .to_string()
        .into_bytes()
    }

    fn read_content(message_type: &str, content: Value) -> Content {
        read(&event(message_type, content, Value::Null))
            .message
            .unwrap()
            .content
    }

    #[test]
    fn a_text_message_names_its_chat_sender_and_id() {
        let result = read(&event("text", json!({"text": "/start 1234"}), Value::Null));
        assert_eq!(result.answer, Answer::Event);
        let incoming = result.message.unwrap();
        assert_eq!(incoming.channel, ChannelKind::Feishu);
        assert_eq!(incoming.id, "om_5ce6d572455d361153b7cb51da133945");
        assert_eq!(incoming.chat, "oc_5ce6d572455d361153b7xx51da133945");
        assert_eq!(incoming.sender, "ou_84aad35d084aa403a838cf73ee18467");
        assert_eq!(incoming.sender_name, incoming.sender);
        assert_eq!(incoming.content, Content::Text("/start 1234".into()));
    }

    #[test]
    fn files_point_at_their_message() {
        let file = |id: &str| FileRef {
            id: id.into(),
            message_id: "om_5ce6d572455d361153b7cb51da133945".into(),
        };
        assert_eq!(
            read_content("image", json!({"image_key": "img_v2_ab"})),
            Content::Photo {
                file: file("img_v2_ab"),
                caption: String::new()
            }
        );
        assert_eq!(
            read_content("audio", json!({"file_key": "file_v2_a", "duration": 2001})),
            Content::Voice {
                file: file("file_v2_a"),
                seconds: 3
            }
        );
        assert_eq!(
            read_content(
                "file",
                json!({"file_key": "file_v2_f", "file_name": "notes.pdf"})
            ),
            Content::Document {
                file: file("file_v2_f"),
                name: "notes.pdf".into(),
                caption: String::new()
            }
        );
    }

    #[test]
    fn other_kinds_and_unreadable_content_are_unsupported() {
        assert_eq!(
            read_content("sticker", json!({"file_key": "s"})),
            Content::Unsupported("sticker".into())
        );
        assert_eq!(
            read_content("post", json!({"title": "", "content": []})),
            Content::Unsupported("post".into())
        );
        assert_eq!(
            read_content("image", json!({"file_key": "not an image"})),
            Content::Unsupported("image".into())
        );
    }

    #[test]
    fn mentions_that_address_the_bot_are_dropped_and_others_named() {
        let mentions = json!([
            {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "Carapace", "tenant_key": "t"},
            {"key": "@_user_12", "id": {"open_id": "ou_x"}, "name": "Ada", "tenant_key": "t"},
        ]);
        let text = json!({"text": "@_user_1 /ask @_user_12 about it"});
        let incoming = read(&event("text", text, mentions.clone()))
            .message
            .unwrap();
        assert_eq!(incoming.content, Content::Text("/ask @Ada about it".into()));
        let text = json!({"text": "@_user_1 @_user_12  hi"});
        let incoming = read(&event("text", text, mentions)).message.unwrap();
        assert_eq!(incoming.content, Content::Text("hi".into()));
    }

    #[test]
    fn other_events_and_messages_without_a_sender_are_skipped() {
        let mut other: Value =
            serde_json::from_slice(&event("text", json!({"text": "x"}), Value::Null)).unwrap();
        other["header"]["event_type"] = json!("im.chat.member.bot.added_v1");
        assert!(read(other.to_string().as_bytes()).message.is_none());
        let mut anonymous: Value =
            serde_json::from_slice(&event("text", json!({"text": "x"}), Value::Null)).unwrap();
        anonymous["event"]["sender"]["sender_id"] = Value::Null;
        assert!(read(anonymous.to_string().as_bytes()).message.is_none());
        assert!(read(b"not json").message.is_none());
        assert!(read(br#"{"schema":"2.0"}"#).message.is_none());
    }
}
