//! A fake Telegram Bot API for tests and benches, speaking the real wire format on the real
//! paths: getMe, getUpdates (real long polling with offsets), deleteWebhook, sendMessage,
//! sendVoice, sendPhoto, setMyCommands, sendChatAction, setMessageReaction, getFile and file
//! downloads. Parameters are accepted in every encoding the real API accepts (query, form,
//! JSON, multipart).
//!
//! The test side drives it from Rust: inject messages, read what the bot sent, see when an
//! update was first delivered (the bench measures message → reply latency from it) and when a
//! method was first called (the bench times a client's start to its first long poll), and make
//! methods fail the way the real server does (gateway errors, 429 with retry_after, a webhook
//! that blocks getUpdates).
//!
//! Not modelled: negative offsets, `allowed_updates` filtering (the fake delivers every
//! injected update, and records what the client asked for), webhooks beyond blocking
//! getUpdates, and the conflict between two simultaneous pollers.

mod methods;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Handler};
use methods::Shared;
use state::{Failure, State};
pub use state::{Sent, SentKind};

/// The token the fake accepts (the real format: the bot's id, a colon, 35 characters).
pub const TOKEN: &str = "4839574812:AAHfakeTOKENforTESTSonly-0123456789ab";
/// The bot's user name (getMe).
pub const BOT_USERNAME: &str = "carapace_test_bot";

/// A running fake; clones share the server. It serves until the runtime it started on ends.
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    address: SocketAddr,
    tls: bool,
}

impl FakeTelegram {
    /// Binds `address` (port 0 picks one) and serves there.
    pub async fn start(
        address: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Result<FakeTelegram, server::Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| server::Error::Setup(format!("bind {address}: {error}")))?;
        FakeTelegram::from_listener(listener, tls)
    }

    /// Serves on a listener the caller bound (inside a test's network namespace).
    pub fn from_listener(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    ) -> Result<FakeTelegram, server::Error> {
        let address = listener
            .local_addr()
            .map_err(|error| server::Error::Setup(error.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            updates_changed: tokio::sync::Notify::new(),
            sent_changed: tokio::sync::Notify::new(),
            token: TOKEN.to_string(),
        });
        let for_handler = Arc::clone(&shared);
        let handler: Handler =
            Arc::new(move |request| Box::pin(methods::handle(Arc::clone(&for_handler), request)));
        let is_tls = tls.is_some();
        tokio::spawn(server::serve(listener, tls, handler));
        Ok(FakeTelegram {
            shared,
            address,
            tls: is_tls,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What a client uses instead of `https://api.telegram.org`.
    pub fn api_base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// A text message from `user_id` in `chat_id` (equal ids: a private chat). Returns the
    /// update_id.
    pub fn inject_text(&self, user_id: i64, chat_id: i64, first_name: &str, text: &str) -> i64 {
        self.inject_message(user_id, chat_id, first_name, json!({ "text": text }))
    }

    /// A voice message holding `ogg` (Ogg/Opus bytes) that lasts `seconds`.
    pub fn inject_voice(
        &self,
        user_id: i64,
        chat_id: i64,
        first_name: &str,
        ogg: Vec<u8>,
        seconds: u32,
    ) -> i64 {
        let size = ogg.len();
        let file_id = self.shared.lock().add_file("voice", "oga", ogg);
        let voice = json!({"voice": {
            "file_id": file_id, "file_unique_id": format!("AgAD{file_id}"),
            "duration": seconds, "mime_type": "audio/ogg", "file_size": size
        }});
        self.inject_message(user_id, chat_id, first_name, voice)
    }

    /// A photo: the largest size holds `jpeg`; a smaller thumbnail comes first, as Telegram
    /// sends them.
    pub fn inject_photo(
        &self,
        user_id: i64,
        chat_id: i64,
        first_name: &str,
        jpeg: Vec<u8>,
        caption: &str,
    ) -> i64 {
        let size = jpeg.len();
        let (thumbnail, full) = {
            let mut state = self.shared.lock();
            let thumbnail = state.add_file("photos", "jpg", b"thumbnail".to_vec());
            (thumbnail, state.add_file("photos", "jpg", jpeg))
        };
        let mut photo = json!({"photo": [
            {"file_id": thumbnail, "file_unique_id": "AgADthumb", "file_size": 9, "width": 90, "height": 67},
            {"file_id": full, "file_unique_id": format!("AgAD{full}"), "file_size": size, "width": 1280, "height": 960}
        ]});
        add_caption(&mut photo, caption);
        self.inject_message(user_id, chat_id, first_name, photo)
    }

    /// A file sent as a document.
    pub fn inject_document(
        &self,
        user_id: i64,
        chat_id: i64,
        first_name: &str,
        file_name: &str,
        bytes: Vec<u8>,
        caption: &str,
    ) -> i64 {
        let size = bytes.len();
        let file_id = self.shared.lock().add_file("documents", "bin", bytes);
        let mut document = json!({"document": {
            "file_id": file_id, "file_unique_id": format!("AgAD{file_id}"),
            "file_name": file_name, "mime_type": "application/octet-stream", "file_size": size
        }});
        add_caption(&mut document, caption);
        self.inject_message(user_id, chat_id, first_name, document)
    }

    /// A message with any other content (`{"sticker": {…}}`, `{"location": {…}}`).
    pub fn inject_message(
        &self,
        user_id: i64,
        chat_id: i64,
        first_name: &str,
        content: Value,
    ) -> i64 {
        let update_id = {
            let mut state = self.shared.lock();
            let message = state.message(user_id, chat_id, first_name, content);
            let mut fields = serde_json::Map::new();
            fields.insert("message".into(), message);
            state.push_update(fields)
        };
        self.shared.updates_changed.notify_waiters();
        update_id
    }

    /// An update of another kind, e.g. `{"edited_message": {…}}`; the update_id is added.
    pub fn inject_update(&self, fields: serde_json::Map<String, Value>) -> i64 {
        let update_id = self.shared.lock().push_update(fields);
        self.shared.updates_changed.notify_waiters();
        update_id
    }

    /// Makes getFile report `size` for this file (None: no file_size field), whatever its real
    /// size; the download still serves the real bytes.
    pub fn report_file_size(&self, file_id: &str, size: Option<u64>) {
        if let Some(file) = self.shared.lock().files.get_mut(file_id) {
            file.reported_size = Some(size);
        }
    }

    /// Serves downloads chunked, without Content-Length.
    pub fn serve_downloads_unsized(&self, on: bool) {
        self.shared.lock().unsized_downloads = on;
    }

    /// Everything the bot sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// Waits until the bot sent at least `count` messages or `timeout` passes; returns what it
    /// sent either way.
    pub async fn wait_sent(&self, count: usize, timeout: Duration) -> Vec<Sent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut changed = std::pin::pin!(self.shared.sent_changed.notified());
            changed.as_mut().enable();
            let sent = self.sent();
            if sent.len() >= count {
                return sent;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.sent();
            }
        }
    }

    /// When a getUpdates answer first carried this update.
    pub fn delivered_at(&self, update_id: i64) -> Option<Instant> {
        self.shared.lock().delivered.get(&update_id).copied()
    }

    /// The highest offset the bot passed to getUpdates: every update below it is confirmed.
    pub fn confirmed_offset(&self) -> i64 {
        self.shared.lock().confirmed_offset
    }

    /// A press on `data`, a button under a message the bot sent to `chat_id`; the query's id
    /// is "q" and that message's id.
    pub fn inject_button(&self, user_id: i64, chat_id: i64, first_name: &str, data: &str) -> i64 {
        let update_id = {
            let mut state = self.shared.lock();
            let message = state.bot_message(&chat_id.to_string(), json!({"text": "a question"}));
            let query = json!({
                "id": format!("q{}", message["message_id"]),
                "from": {"id": user_id, "is_bot": false, "first_name": first_name},
                "message": message,
                "chat_instance": "1",
                "data": data,
            });
            let mut fields = serde_json::Map::new();
            fields.insert("callback_query".into(), query);
            state.push_update(fields)
        };
        self.shared.updates_changed.notify_waiters();
        update_id
    }

    /// People's messages the bot deleted (deleteMessage), as they were sent.
    pub fn deleted(&self) -> Vec<Value> {
        self.shared.lock().deleted.clone()
    }

    /// The callback_query ids the bot answered (answerCallbackQuery).
    pub fn answered_queries(&self) -> Vec<String> {
        self.shared.lock().answered_queries.clone()
    }

    /// The `allowed_updates` the bot last asked for.
    pub fn allowed_updates(&self) -> Option<Value> {
        self.shared.lock().allowed_updates.clone()
    }

    /// The bot's command menu (setMyCommands).
    pub fn commands(&self) -> Vec<(String, String)> {
        self.shared.lock().commands.clone()
    }

    /// Answers the next `count` calls of `method` (e.g. "getUpdates"; "file" for downloads)
    /// with `status`: 5xx as a gateway's HTML page, others as the Bot API's JSON error.
    pub fn fail_next(&self, method: &str, count: usize, status: u16) {
        self.push_failures(
            method,
            count,
            Failure {
                status,
                retry_after: None,
            },
        );
    }

    /// Answers the next `count` calls of `method` with 429 and this `retry_after` (seconds).
    pub fn rate_limit_next(&self, method: &str, count: usize, retry_after: u64) {
        let failure = Failure {
            status: 429,
            retry_after: Some(retry_after),
        };
        self.push_failures(method, count, failure);
    }

    fn push_failures(&self, method: &str, count: usize, failure: Failure) {
        let mut state = self.shared.lock();
        let queue = state
            .failures
            .entry(method.to_ascii_lowercase())
            .or_default();
        queue.extend(std::iter::repeat_n(failure, count));
    }

    /// Sets a webhook: getUpdates answers 409 until the bot calls deleteWebhook.
    pub fn set_webhook(&self, url: &str) {
        self.shared.lock().webhook = Some(url.to_string());
    }

    pub fn webhook(&self) -> Option<String> {
        self.shared.lock().webhook.clone()
    }

    /// The methods called, in order, as the client spelled them ("file" for downloads).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// When the head of the first request for `method` (any case, e.g. "getUpdates") arrived;
    /// the bench times a client's start up to its first long poll with it.
    pub fn first_request_at(&self, method: &str) -> Option<Instant> {
        let key = method.to_ascii_lowercase();
        self.shared.lock().first_request.get(&key).copied()
    }
}

fn add_caption(content: &mut Value, caption: &str) {
    if let (false, Some(content)) = (caption.is_empty(), content.as_object_mut()) {
        content.insert("caption".into(), json!(caption));
    }
}

#[cfg(test)]
mod tests;
