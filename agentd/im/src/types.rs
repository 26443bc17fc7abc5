//! The contract between a channel and agentd's core.
//!
//! Delivery is at least once, and the core makes it exactly once: a batch from
//! [`Channel::next_batch`] is acknowledged to the IM server only by the *next* call, which the
//! core makes after it stored the batch in its durable inbox (and dropped the ids it had
//! already seen). A crash in between means the server sends the batch again.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Telegram,
    Feishu,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Telegram => "telegram",
            ChannelKind::Feishu => "feishu",
        }
    }
}

/// A file the IM server holds (Telegram `file_id`, Feishu `file_key` + message id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub id: String,
    /// Feishu needs the message the resource belongs to; Telegram leaves it empty.
    pub message_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// Plain text, commands included ("/start CODE", "/status@my_bot").
    Text(String),
    Voice {
        file: FileRef,
        seconds: u32,
    },
    Photo {
        file: FileRef,
        caption: String,
    },
    Document {
        file: FileRef,
        name: String,
        caption: String,
    },
    /// Something the box does not handle (a sticker, a location); the name says what.
    Unsupported(String),
    /// A button of an [`Outgoing::Choice`] was pressed; `data` is the button's.
    Button {
        data: String,
    },
}

/// One message from a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub channel: ChannelKind,
    /// Unique within the channel (Telegram `update_id`, Feishu `message_id`, or `event_id` for
    /// a button press): the inbox drops a second copy by it.
    pub id: String,
    /// Where replies go (Telegram chat id, Feishu chat id).
    pub chat: String,
    /// Who sent it (Telegram user id, Feishu open_id): pairing binds this.
    pub sender: String,
    /// The message itself in its chat (Telegram `message_id`, Feishu `message_id`; empty for a
    /// button press): what [`Outgoing::Delete`] names.
    #[serde(default)]
    pub message_id: String,
    /// A display name for lists (`/users`); never used to decide anything.
    pub sender_name: String,
    pub content: Content,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outgoing {
    Text(String),
    /// Ogg/Opus bytes.
    Voice(Vec<u8>),
    /// PNG or JPEG bytes.
    Photo {
        bytes: Vec<u8>,
        caption: String,
    },
    /// A question with buttons under it (Telegram's inline keyboard, Feishu's interactive
    /// card); a press comes back as [`Content::Button`].
    Choice {
        text: String,
        buttons: Vec<Button>,
    },
    /// Takes a person's message out of the chat (one that carried a secret). Telegram lets a
    /// bot delete the messages it received in a private chat, for 48 hours; Feishu lets a bot
    /// recall only its own messages, so it refuses this.
    Delete {
        message_id: String,
    },
}

/// One button of a [`Outgoing::Choice`]. `data` is at most [`BUTTON_DATA_MAX`] bytes
/// (Telegram's callback_data limit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub data: String,
}

pub const BUTTON_DATA_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The credentials were refused (Telegram 401, Feishu auth failure): retrying will not help
    /// until the owner changes them.
    #[error("{channel} refused the bot's credentials: {detail}; check the token in /settings")]
    Unauthorized {
        channel: &'static str,
        detail: String,
    },
    /// The server asked us to slow down.
    #[error("{channel} asks to wait {retry_after:?}: {detail}")]
    RateLimited {
        channel: &'static str,
        retry_after: Duration,
        detail: String,
    },
    /// The server refused this one request for good (chat not found, message too long):
    /// the outbox gives up on it instead of retrying for ever.
    #[error("{channel} refused the request: {detail}")]
    Rejected {
        channel: &'static str,
        detail: String,
    },
    /// Connect, TLS, timeout or a 5xx: try again later.
    #[error("{channel} is unreachable: {detail}")]
    Unreachable {
        channel: &'static str,
        detail: String,
    },
    /// The server answered something we cannot read.
    #[error("{channel} answered something unreadable: {detail}")]
    Protocol {
        channel: &'static str,
        detail: String,
    },
}

impl Error {
    /// Whether trying the same request again later may work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. } | Error::Unreachable { .. } | Error::Protocol { .. }
        )
    }
}

/// One IM link. Implementations keep their cursor (Telegram's offset) inside, behind `&self`.
pub trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;

    /// Checks the credentials and returns the bot's user name (Telegram `getMe`; Feishu: the
    /// tenant token and the bot info). Settings transactions call it.
    fn check(&self) -> impl Future<Output = Result<String, Error>> + Send;

    /// Waits (long poll) for the next messages, and acknowledges everything the previous call
    /// returned. Returns an empty batch when the wait ends with nothing new.
    fn next_batch(&self) -> impl Future<Output = Result<Vec<Incoming>, Error>> + Send;

    fn send(
        &self,
        chat: &str,
        message: &Outgoing,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The bytes of a file someone sent (Telegram: at most 20 MB).
    fn download(&self, file: &FileRef) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// The command menu the IM client shows: (command without '/', description).
    fn set_commands(
        &self,
        commands: &[(String, String)],
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
