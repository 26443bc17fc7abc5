//! A Bot API update read as an [`Incoming`] message, or skipped. Skipped updates (no message,
//! a message we cannot read, one with no sender) are still acknowledged by the next poll: the
//! offset moves past every update listed, so none of them can stall the link.

use serde_json::Value;

use super::api::{CallbackQuery, Message, User};
use crate::{ChannelKind, Content, FileRef, Incoming};

/// Content kinds the box does not handle, looked for before the ones it does: an animation
/// also carries a `document`, a venue also a `location`.
const UNSUPPORTED: &[&str] = &[
    "animation",
    "audio",
    "video",
    "video_note",
    "sticker",
    "story",
    "paid_media",
    "contact",
    "dice",
    "game",
    "poll",
    "venue",
    "location",
    "invoice",
    "checklist",
    "giveaway",
];

pub(super) fn read(update_id: i64, message: Option<Value>) -> Option<Incoming> {
    let message: Message = serde_json::from_value(message?).ok()?;
    // Messages from people always name the sender (groups give anonymous admins a stand-in
    // user); pairing binds the sender, so a message without one is not for us.
    let from = message.from.as_ref()?;
    Some(Incoming {
        channel: ChannelKind::Telegram,
        id: update_id.to_string(),
        chat: message.chat.id.to_string(),
        sender: from.id.to_string(),
        message_id: message.message_id.to_string(),
        sender_name: display_name(from),
        content: content(&message),
    })
}

/// A button press: from the chat the button's message is in, with the button's data. The
/// query's id is for answerCallbackQuery.
pub(super) fn read_button(update_id: i64, query: Value) -> Option<(String, Incoming)> {
    let query: CallbackQuery = serde_json::from_value(query).ok()?;
    let chat = query.message.as_ref()?.chat.id.to_string();
    let incoming = Incoming {
        channel: ChannelKind::Telegram,
        id: update_id.to_string(),
        chat,
        sender: query.from.id.to_string(),
        message_id: String::new(),
        sender_name: display_name(&query.from),
        content: Content::Button {
            data: query.data.unwrap_or_default(),
        },
    };
    Some((query.id, incoming))
}

fn content(message: &Message) -> Content {
    if let Some(kind) = UNSUPPORTED
        .iter()
        .find(|kind| message.other.contains_key(**kind))
    {
        return Content::Unsupported((*kind).to_string());
    }
    let caption = message.caption.clone().unwrap_or_default();
    if let Some(text) = &message.text {
        return Content::Text(text.clone());
    }
    if let Some(voice) = &message.voice {
        return Content::Voice {
            file: file(&voice.file_id),
            seconds: voice.duration,
        };
    }
    // Telegram lists a photo in several sizes; the box wants the most detail.
    let largest = message.photo.iter().flatten().max_by_key(|size| {
        (
            u64::from(size.width) * u64::from(size.height),
            size.file_size.unwrap_or(0),
        )
    });
    if let Some(size) = largest {
        return Content::Photo {
            file: file(&size.file_id),
            caption,
        };
    }
    if let Some(document) = &message.document {
        return Content::Document {
            file: file(&document.file_id),
            name: document.file_name.clone().unwrap_or_default(),
            caption,
        };
    }
    // Service messages (members joining, a pinned message) and kinds newer than this list.
    Content::Unsupported("unknown".into())
}

fn file(file_id: &str) -> FileRef {
    FileRef {
        id: file_id.to_string(),
        message_id: String::new(),
    }
}

/// "First Last", else "@username", else the user id.
fn display_name(user: &User) -> String {
    let full = match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    };
    let full = full.trim();
    match &user.username {
        _ if !full.is_empty() => full.to_string(),
        Some(username) => format!("@{username}"),
        None => user.id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(content: Value) -> Value {
        let mut message = json!({
            "message_id": 5, "date": 1_700_000_000,
            "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace"},
            "chat": {"id": -1001, "type": "group"}
        });
        message
            .as_object_mut()
            .unwrap()
            .extend(content.as_object().unwrap().clone());
        message
    }

    #[test]
    fn text_names_the_update_chat_and_sender() {
        let incoming = read(9, Some(message(json!({"text": "/start abc"})))).unwrap();
        assert_eq!(incoming.id, "9");
        assert_eq!(incoming.chat, "-1001");
        assert_eq!(incoming.sender, "42");
        assert_eq!(incoming.sender_name, "Ada Lovelace");
        assert_eq!(incoming.content, Content::Text("/start abc".into()));
    }

    #[test]
    fn the_largest_photo_size_is_taken() {
        let photo = json!({"caption": "look", "photo": [
            {"file_id": "small", "width": 90, "height": 60},
            {"file_id": "big", "width": 1280, "height": 853, "file_size": 9},
            {"file_id": "medium", "width": 320, "height": 213}
        ]});
        let incoming = read(1, Some(message(photo))).unwrap();
        assert_eq!(
            incoming.content,
            Content::Photo {
                file: file("big"),
                caption: "look".into()
            }
        );
    }

    #[test]
    fn an_animation_is_not_read_as_its_document() {
        let animation = json!({
            "animation": {"file_id": "a", "width": 1, "height": 1, "duration": 1},
            "document": {"file_id": "a", "file_name": "cat.mp4"}
        });
        let incoming = read(1, Some(message(animation))).unwrap();
        assert_eq!(incoming.content, Content::Unsupported("animation".into()));
    }

    #[test]
    fn unknown_kinds_and_service_messages_are_unsupported() {
        let sticker = json!({"sticker": {"file_id": "s", "type": "regular"}});
        let incoming = read(1, Some(message(sticker))).unwrap();
        assert_eq!(incoming.content, Content::Unsupported("sticker".into()));
        let joined = json!({"new_chat_members": [{"id": 7, "is_bot": false, "first_name": "B"}]});
        let incoming = read(2, Some(message(joined))).unwrap();
        assert_eq!(incoming.content, Content::Unsupported("unknown".into()));
    }

    #[test]
    fn updates_we_cannot_use_are_skipped() {
        assert!(read(1, None).is_none());
        assert!(read(1, Some(json!({"chat": "not an object"}))).is_none());
        let no_sender = json!({"message_id": 1, "date": 1, "chat": {"id": 5}, "text": "x"});
        assert!(read(1, Some(no_sender)).is_none());
    }

    #[test]
    fn a_nameless_user_is_shown_by_username_or_id() {
        let user = |first: &str, username: Option<&str>| User {
            id: 77,
            first_name: first.into(),
            last_name: None,
            username: username.map(String::from),
        };
        assert_eq!(display_name(&user(" ", Some("ada"))), "@ada");
        assert_eq!(display_name(&user("", None)), "77");
        assert_eq!(display_name(&user("Ada", Some("ada"))), "Ada");
    }
}
