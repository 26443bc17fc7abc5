//! Feishu (open.feishu.cn) and Lark (open.larksuite.com) through an enterprise self-built
//! app's long connection: a WebSocket out to the platform carries the events, the OpenAPI
//! carries replies and files. No inbound port, no webhook.
//!
//! - `token.rs`: the tenant access token, cached and refreshed before it expires; `bot.rs`:
//!   the check that the credentials work.
//! - `call.rs`: one OpenAPI call and its failures mapped onto the channel's errors.
//! - `endpoint.rs`, `connection.rs`: the long connection (bootstrap, WebSocket, pings).
//! - `frame.rs`, `fragments.rs`: its protobuf frames and the reassembly of split events.
//! - `receive.rs`, `incoming.rs`, `card_action.rs`: batches for the core (messages, and
//!   presses on our cards' buttons), and the acknowledgements.
//! - `send.rs`, `download.rs`: replies and files.
//!
//! The app secret and the tenant token never appear in an error or a log line: every error
//! leaves through `Feishu::scrub`, which replaces both, and `Debug` prints neither.

mod bot;
mod call;
mod card_action;
mod connection;
mod download;
mod endpoint;
mod fragments;
mod frame;
mod incoming;
mod receive;
mod send;
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Channel, ChannelKind, Error, FileRef, Incoming, Outgoing};
pub use download::DOWNLOAD_LIMIT;

/// Feishu's OpenAPI domain (mainland China).
pub const FEISHU_DOMAIN: &str = "https://open.feishu.cn";
/// Lark's (everywhere else).
pub const LARK_DOMAIN: &str = "https://open.larksuite.com";

const CHANNEL: &str = "feishu";
/// A short call (token, bot info, send, the long connection's bootstrap).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// An upload or a download: 20 MB on a slow uplink (about 1.5 Mbit/s).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `next_batch` waits for an event before it returns an empty batch, so the receive
/// loop stays responsive (as a Telegram long poll does).
const BATCH_WAIT: Duration = Duration::from_secs(30);

/// One app, one long connection.
pub struct Feishu {
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    /// The OpenAPI domain without a trailing slash.
    base: String,
    app_id: String,
    app_secret: String,
    token: token::TokenCache,
    link: tokio::sync::Mutex<receive::Link>,
    batch_wait: Duration,
}

impl Feishu {
    /// `domain` is [`FEISHU_DOMAIN`] or [`LARK_DOMAIN`] on a box; tests point it at a fake. It
    /// must be https (or http to loopback), as `carapace_http::checked_url` says. `tls` is what
    /// the WebSocket trusts (`carapace_http::tls_config`, the same roots as `http`).
    pub fn new(
        http: reqwest::Client,
        tls: Arc<rustls::ClientConfig>,
        domain: &str,
        app_id: String,
        app_secret: String,
    ) -> Result<Feishu, carapace_http::Error> {
        let base = carapace_http::checked_url(domain.trim())?;
        Ok(Feishu {
            http,
            tls,
            base: base.as_str().trim_end_matches('/').to_string(),
            app_id,
            app_secret,
            token: token::TokenCache::default(),
            link: tokio::sync::Mutex::new(receive::Link::default()),
            batch_wait: BATCH_WAIT,
        })
    }

    /// How long `next_batch` waits for an event before returning an empty batch (30 s unless
    /// changed; tests shorten it).
    pub fn with_batch_wait(mut self, wait: Duration) -> Feishu {
        self.batch_wait = wait;
        self
    }

    /// `error` with the app secret and every tenant token this channel holds replaced, for
    /// anything that may end up in a message.
    fn scrub(&self, error: Error) -> Error {
        let redact = |detail: String| {
            let mut detail = self.token.redact(&detail);
            if !self.app_secret.is_empty() {
                detail = detail.replace(&self.app_secret, "<app secret>");
            }
            detail
        };
        match error {
            Error::Unauthorized { channel, detail } => Error::Unauthorized {
                channel,
                detail: redact(detail),
            },
            Error::RateLimited {
                channel,
                retry_after,
                detail,
            } => Error::RateLimited {
                channel,
                retry_after,
                detail: redact(detail),
            },
            Error::Rejected { channel, detail } => Error::Rejected {
                channel,
                detail: redact(detail),
            },
            Error::Unreachable { channel, detail } => Error::Unreachable {
                channel,
                detail: redact(detail),
            },
            Error::Protocol { channel, detail } => Error::Protocol {
                channel,
                detail: redact(detail),
            },
        }
    }
}

impl fmt::Debug for Feishu {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Feishu")
            .field("base", &self.base)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("batch_wait", &self.batch_wait)
            .finish_non_exhaustive()
    }
}

impl Channel for Feishu {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Feishu
    }

    async fn check(&self) -> Result<String, Error> {
        self.bot_name().await.map_err(|error| self.scrub(error))
    }

    async fn next_batch(&self) -> Result<Vec<Incoming>, Error> {
        self.receive().await.map_err(|error| self.scrub(error))
    }

    async fn send(&self, chat: &str, message: &Outgoing) -> Result<(), Error> {
        self.send_message(chat, message)
            .await
            .map_err(|error| self.scrub(error))
    }

    async fn download(&self, file: &FileRef) -> Result<Vec<u8>, Error> {
        self.download_file(file)
            .await
            .map_err(|error| self.scrub(error))
    }

    /// Feishu has no per-bot command menu to set through the OpenAPI (a bot's menu is edited
    /// in the developer console), so there is nothing to do: commands still work as text.
    async fn set_commands(&self, _commands: &[(String, String)]) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feishu(domain: &str) -> Result<Feishu, carapace_http::Error> {
        let path = std::path::Path::new("-");
        let http = carapace_http::client_trusting(None, path).unwrap();
        let tls = carapace_http::tls_config_trusting(None, path).unwrap();
        Feishu::new(
            http,
            tls,
            domain,
            "cli_a1b2".into(),
            "s3cr3t-app-secret".into(),
        )
    }

    #[test]
    fn the_secret_is_scrubbed_and_never_debug_printed() {
        let feishu = feishu("https://open.feishu.cn/").unwrap();
        assert_eq!(feishu.base, "https://open.feishu.cn");
        let printed = format!("{feishu:?}");
        assert!(
            !printed.contains("s3cr3t") && printed.contains("cli_a1b2"),
            "{printed}"
        );
        let error = feishu.scrub(Error::Rejected {
            channel: CHANNEL,
            detail: "echo: s3cr3t-app-secret".into(),
        });
        assert_eq!(
            error.to_string(),
            "feishu refused the request: echo: <app secret>"
        );
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        assert!(feishu("http://open.feishu.cn").is_err());
        assert!(feishu("http://127.0.0.1:9").is_ok());
    }
}
