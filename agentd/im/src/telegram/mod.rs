//! Telegram through the Bot API: long polling out to api.telegram.org, no inbound port.
//!
//! The handful of Bot API objects we read are our own serde structs (`api.rs`) rather than
//! frankenstein's or teloxide's: their full type sets cost compile time and memory on the box
//! for the eight methods we call (getMe, getUpdates, deleteWebhook, sendMessage, sendVoice,
//! sendPhoto, getFile, setMyCommands).
//!
//! The bot token is part of every URL. It never appears in an error or a log line: errors are
//! built from reqwest errors without their URL, and every detail is scrubbed of the token.

mod api;
mod call;
mod download;
mod incoming;
mod poll;
mod send;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Duration;

use serde_json::json;

use crate::{Channel, ChannelKind, Error, FileRef, Incoming, Outgoing};
use call::Payload;
pub use download::DOWNLOAD_LIMIT;

/// Where the Bot API lives.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

const CHANNEL: &str = "telegram";
/// A long poll's HTTP request may outlast the poll timeout by this much (round trip, a slow
/// server) before the client gives up on the connection.
const POLL_MARGIN: Duration = Duration::from_secs(10);
/// A short call (getMe, sendMessage, getFile, …).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// An upload or a download: 20 MB on a slow uplink (about 1.5 Mbit/s).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// One bot, one long-polling link.
pub struct Telegram {
    http: reqwest::Client,
    /// The API base without a trailing slash.
    base: String,
    token: Token,
    poll_timeout: Duration,
    /// The next getUpdates offset: the last update_id seen + 1, or 0 before the first batch.
    offset: AtomicI64,
    /// Whether the last getUpdates was answered. Until it is (at start, after a failure) the
    /// poll is short (timeout 0): Telegram answers at once, so the link is known to be up
    /// without waiting out a whole long poll (what a trial boot's commit waits for).
    answered: AtomicBool,
}

impl Telegram {
    /// `api_base` is [`DEFAULT_API_BASE`] on a box; tests point it at a fake. It must be
    /// https (or http to loopback), as `carapace_http::checked_url` says.
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        token: String,
        poll_timeout: Duration,
    ) -> Result<Telegram, carapace_http::Error> {
        let base = carapace_http::checked_url(api_base.trim())?;
        Ok(Telegram {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            token: Token(token),
            poll_timeout,
            offset: AtomicI64::new(0),
            answered: AtomicBool::new(false),
        })
    }
}

impl fmt::Debug for Telegram {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Telegram")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .field("poll_timeout", &self.poll_timeout)
            .finish_non_exhaustive()
    }
}

/// The bot token: in URLs only.
struct Token(String);

impl Token {
    /// `text` with the token replaced, for anything that may end up in a message.
    fn redact(&self, text: &str) -> String {
        match self.0.is_empty() {
            true => text.to_string(),
            false => text.replace(&self.0, "<token>"),
        }
    }
}

impl Channel for Telegram {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    async fn check(&self) -> Result<String, Error> {
        let me: api::User = self
            .call("getMe", Payload::Json(json!({})), CALL_TIMEOUT)
            .await?;
        me.username.ok_or(Error::Protocol {
            channel: CHANNEL,
            detail: "getMe: the bot has no username".into(),
        })
    }

    async fn next_batch(&self) -> Result<Vec<Incoming>, Error> {
        self.poll().await
    }

    async fn send(&self, chat: &str, message: &Outgoing) -> Result<(), Error> {
        self.send_message(chat, message).await
    }

    async fn download(&self, file: &FileRef) -> Result<Vec<u8>, Error> {
        self.download_file(file).await
    }

    async fn set_commands(&self, commands: &[(String, String)]) -> Result<(), Error> {
        let commands: Vec<_> = commands
            .iter()
            .map(|(command, description)| json!({"command": command, "description": description}))
            .collect();
        let body = json!({ "commands": commands });
        self.call::<bool>("setMyCommands", Payload::Json(body), CALL_TIMEOUT)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_redacted_and_never_debug_printed() {
        let client = carapace_http::client_trusting(None, std::path::Path::new("-")).unwrap();
        let token = "123:secret-token".to_string();
        let telegram =
            Telegram::new(client, "https://api.telegram.org/", token, Duration::ZERO).unwrap();
        assert_eq!(telegram.base, "https://api.telegram.org");
        assert!(!format!("{telegram:?}").contains("secret"));
        let redacted = telegram.token.redact("GET /bot123:secret-token/getMe");
        assert_eq!(redacted, "GET /bot<token>/getMe");
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let client = carapace_http::client_trusting(None, std::path::Path::new("-")).unwrap();
        let result = Telegram::new(
            client,
            "http://api.telegram.org",
            "t".into(),
            Duration::ZERO,
        );
        assert!(result.is_err());
    }
}
