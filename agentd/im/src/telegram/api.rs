//! The few Bot API objects this channel reads, as our own serde structs, with only the fields
//! we use (serde skips the rest, so new fields Telegram adds cost nothing).

use serde::Deserialize;
use serde_json::{Map, Value};

/// Every answer: `{"ok":true,"result":…}` or `{"ok":false,"error_code":…,"description":…}`.
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub ok: bool,
    pub result: Option<T>,
    pub error_code: Option<u16>,
    pub description: Option<String>,
    pub parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
pub(super) struct ResponseParameters {
    /// Seconds to wait after a 429.
    pub retry_after: Option<u64>,
}

/// One update as getUpdates lists it. The message stays raw until `incoming.rs` reads it, so
/// one message we cannot read does not make the whole batch unreadable (and stall the link).
#[derive(Deserialize)]
pub(super) struct Update {
    pub update_id: i64,
    pub message: Option<Value>,
    /// A press on a button of one of our messages (an inline keyboard).
    pub callback_query: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message the button was under; missing when it is too old for Telegram to send.
    pub message: Option<ButtonMessage>,
    pub data: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ButtonMessage {
    pub chat: Chat,
}

#[derive(Deserialize)]
pub(super) struct Message {
    pub message_id: i64,
    pub from: Option<User>,
    pub chat: Chat,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub voice: Option<Voice>,
    pub photo: Option<Vec<PhotoSize>>,
    pub document: Option<Document>,
    /// Every other field: the content kinds we do not handle are found here by name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Deserialize)]
pub(super) struct User {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Chat {
    pub id: i64,
}

#[derive(Deserialize)]
pub(super) struct Voice {
    pub file_id: String,
    pub duration: u32,
}

#[derive(Deserialize)]
pub(super) struct PhotoSize {
    pub file_id: String,
    pub width: u32,
    pub height: u32,
    pub file_size: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct Document {
    pub file_id: String,
    pub file_name: Option<String>,
}

/// getFile's answer. `file_path` is missing when the file cannot be downloaded.
#[derive(Deserialize)]
pub(super) struct File {
    pub file_size: Option<u64>,
    pub file_path: Option<String>,
}
