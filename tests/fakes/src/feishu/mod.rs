//! A fake Feishu/Lark open platform for tests and benches, speaking the real wire formats on
//! the real paths: the tenant token, bot info, the long connection's bootstrap
//! (`/callback/ws/endpoint`) and the long connection itself (a WebSocket on the same listener
//! carrying protobuf `pbbp2.Frame`s: events, card callbacks, pings and pongs,
//! acknowledgements), sending messages (text, image, audio, interactive cards), uploading
//! images and files, and downloading the files messages carry.
//!
//! The test side drives it from Rust: inject messages and presses on card buttons (sent at
//! once to every open connection, and again to each new connection until acknowledged, as the
//! real server redelivers), cut events into several frames, see the acknowledgements and
//! pings, read what the bot sent, and make things fail the way the real server does (a
//! dropped connection, an expired token, gateway errors, rate limits, unanswered pings).
//!
//! Not modelled: event types other than `im.message.receive_v1` and `card.action.trigger`,
//! mentions, the 3-second limit on answering a callback, redelivery on a timer (only on
//! reconnect, or when a test calls `redeliver`), ticket expiry, and the connection cap.

mod card;
mod frame;
mod openapi;
mod state;
mod websocket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Handler};
pub use state::{Ack, ClientConfig, Ping, Sent};
use state::{Command, Failure, Resource, State};

/// The app the fake knows (a self-built app's id and secret in the real formats).
pub const APP_ID: &str = "cli_a5f3e1d2c4b60013";
pub const APP_SECRET: &str = "dWl2ZkJ2S1NsZmFrZVNlY3JldEZvclRlc3Rz";
/// The bot's app name (bot info).
pub const BOT_NAME: &str = "Carapace Test";
pub const BOT_OPEN_ID: &str = "ou_7d8a6e6df7621556ce0d21922b676706";

pub(super) struct Shared {
    state: Mutex<State>,
    /// Woken when the bot sent, acknowledged, pinged, connected or disconnected.
    changed: Notify,
    address: SocketAddr,
    tls: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake; clones share the server. It serves until the runtime it started on ends.
#[derive(Clone)]
pub struct FakeFeishu {
    shared: Arc<Shared>,
}

impl FakeFeishu {
    /// Binds `address` (port 0 picks one) and serves there.
    pub async fn start(
        address: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Result<FakeFeishu, server::Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| server::Error::Setup(format!("bind {address}: {error}")))?;
        FakeFeishu::from_listener(listener, tls)
    }

    /// Serves on a listener the caller bound (inside a test's network namespace).
    pub fn from_listener(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    ) -> Result<FakeFeishu, server::Error> {
        let address = listener
            .local_addr()
            .map_err(|error| server::Error::Setup(error.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            changed: Notify::new(),
            address,
            tls: tls.is_some(),
        });
        let for_handler = Arc::clone(&shared);
        let handler: Handler =
            Arc::new(move |request| Box::pin(openapi::handle(Arc::clone(&for_handler), request)));
        tokio::spawn(server::serve(listener, tls, handler));
        Ok(FakeFeishu { shared })
    }

    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// What a client uses instead of `https://open.feishu.cn`.
    pub fn domain(&self) -> String {
        let scheme = if self.shared.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.shared.address)
    }

    /// A text message from `open_id` in `chat_id`; returns its message id (`om_…`).
    pub fn inject_text(&self, open_id: &str, chat_id: &str, text: &str) -> String {
        self.inject_message(open_id, chat_id, "text", json!({ "text": text }))
    }

    /// An image message holding `bytes`; its `image_key` downloads them.
    pub fn inject_image(&self, open_id: &str, chat_id: &str, bytes: Vec<u8>) -> String {
        self.inject_with_file(
            open_id,
            chat_id,
            "image",
            "img_v3_",
            bytes,
            "",
            |key| json!({ "image_key": key }),
        )
    }

    /// A file message named `file_name`.
    pub fn inject_file(
        &self,
        open_id: &str,
        chat_id: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> String {
        let name = file_name.to_string();
        self.inject_with_file(
            open_id,
            chat_id,
            "file",
            "file_v3_",
            bytes,
            file_name,
            |key| json!({ "file_key": key, "file_name": name }),
        )
    }

    /// A voice message (Opus) lasting `duration_ms`.
    pub fn inject_audio(
        &self,
        open_id: &str,
        chat_id: &str,
        bytes: Vec<u8>,
        duration_ms: u64,
    ) -> String {
        self.inject_with_file(
            open_id,
            chat_id,
            "audio",
            "file_v3_",
            bytes,
            "",
            |key| json!({ "file_key": key, "duration": duration_ms }),
        )
    }

    /// A message of any type with this content document (`"sticker"`, `{"file_key": …}`).
    pub fn inject_message(
        &self,
        open_id: &str,
        chat_id: &str,
        message_type: &str,
        content: Value,
    ) -> String {
        self.shared
            .lock()
            .push_message(open_id, chat_id, message_type, content)
    }

    #[allow(clippy::too_many_arguments)]
    fn inject_with_file(
        &self,
        open_id: &str,
        chat_id: &str,
        message_type: &str,
        key_prefix: &str,
        bytes: Vec<u8>,
        file_name: &str,
        content: impl FnOnce(&str) -> Value,
    ) -> String {
        let mut state = self.shared.lock();
        let key = state.id(key_prefix);
        let message_id = state.push_message(open_id, chat_id, message_type, content(&key));
        state.resources.insert(
            (message_id.clone(), key),
            Resource {
                bytes,
                file_name: file_name.to_string(),
            },
        );
        message_id
    }

    /// A press by `open_id` on a button whose value is `{"data": data}` (what the channel
    /// sends) on a card in `chat_id`, as a `card.action.trigger` callback; returns its
    /// event_id, what the channel names the press by.
    pub fn inject_button_press(&self, open_id: &str, chat_id: &str, data: &str) -> String {
        self.inject_card_action(open_id, chat_id, json!({ "data": data }))
    }

    /// A press on a card element whose value is `value`, any JSON.
    pub fn inject_card_action(&self, open_id: &str, chat_id: &str, value: Value) -> String {
        self.shared.lock().push_card_action(open_id, chat_id, value)
    }

    /// Sends card callbacks in frames of type `card` from now on (on), or `event` (off, the
    /// default). The official SDKs read callbacks from `event` frames only and answer them
    /// there; the protocol also has a `card` type, which some report callbacks arrive in.
    pub fn callbacks_in_card_frames(&self, on: bool) {
        self.shared.lock().callback_frame_type = if on { "card" } else { "event" };
    }

    /// Sends events cut into `parts` frames from now on (1: whole).
    pub fn fragment_events(&self, parts: usize) {
        self.shared.lock().fragments = parts.max(1);
    }

    /// Sends every event not acknowledged yet again, on every open connection.
    pub fn redeliver(&self) {
        let mut state = self.shared.lock();
        let numbers: Vec<u64> = state.connections.keys().copied().collect();
        for number in numbers {
            state.deliver_unacked(number);
        }
    }

    /// Drops every open long connection without a closing handshake, as a network failure
    /// does; returns how many there were.
    pub fn drop_connections(&self) -> usize {
        let state = self.shared.lock();
        state
            .connections
            .values()
            .filter(|connection| connection.commands.send(Command::Drop).is_ok())
            .count()
    }

    /// Long connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// Long connections ever opened.
    pub fn connections_opened(&self) -> usize {
        self.shared.lock().connections_opened
    }

    /// How many times the event carrying `message_id` (or the callback with that event_id)
    /// went out whole.
    pub fn deliveries(&self, message_id: &str) -> usize {
        self.shared
            .lock()
            .events
            .iter()
            .find(|event| event.message_id == message_id)
            .map(|event| event.deliveries)
            .unwrap_or(0)
    }

    /// Whether the event carrying `message_id` (or the callback with that event_id) was
    /// acknowledged with code 200.
    pub fn acked(&self, message_id: &str) -> bool {
        let state = self.shared.lock();
        state
            .events
            .iter()
            .any(|event| event.message_id == message_id && event.acked)
    }

    /// Makes the current tenant token invalid, as when it expires or is revoked: the next call
    /// with it gets 99991663, and the token endpoint hands out a new one.
    pub fn expire_token(&self) {
        let mut state = self.shared.lock();
        if let Some(token) = state.current_token.take() {
            state.tokens.remove(&token);
        }
    }

    /// The token the server accepts now, if it issued one (secrecy tests look for it).
    pub fn current_token(&self) -> Option<String> {
        self.shared.lock().current_token.clone()
    }

    /// How long tokens issued from now on live (7200 s by default).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().token_lifetime = lifetime;
    }

    /// The client settings the bootstrap hands out (and pongs, unless `set_pong_config`).
    pub fn set_client_config(&self, config: ClientConfig) {
        self.shared.lock().endpoint_config = config;
    }

    /// The client settings pongs carry.
    pub fn set_pong_config(&self, config: ClientConfig) {
        self.shared.lock().pong_config = Some(config);
    }

    /// Whether pings get a pong (they do unless a test says otherwise).
    pub fn answer_pings(&self, on: bool) {
        self.shared.lock().answer_pings = on;
    }

    /// Serves downloads chunked, without Content-Length.
    pub fn serve_downloads_unsized(&self, on: bool) {
        self.shared.lock().unsized_downloads = on;
    }

    /// Answers the next `count` requests to `endpoint` with `status` (429 as a rate limit, 5xx
    /// as a gateway's page). Endpoints: token, bot_info, endpoint, websocket, messages,
    /// images, files, resources.
    pub fn fail_next(&self, endpoint: &str, count: usize, status: u16) {
        let mut state = self.shared.lock();
        let queue = state.failures.entry(endpoint.to_string()).or_default();
        queue.extend(std::iter::repeat_n(Failure { status }, count));
    }

    /// Every message the bot sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// Every acknowledgement, in order.
    pub fn acks(&self) -> Vec<Ack> {
        self.shared.lock().acks.clone()
    }

    /// Every ping, in order.
    pub fn pings(&self) -> Vec<Ping> {
        self.shared.lock().pings.clone()
    }

    /// The endpoints called, in order (names as `fail_next` takes them).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Waits until the bot sent at least `count` messages or `timeout` passes.
    pub async fn wait_sent(&self, count: usize, timeout: Duration) -> Vec<Sent> {
        self.wait_for(timeout, |state| state.sent.len() >= count)
            .await;
        self.sent()
    }

    /// Waits until at least `count` acknowledgements came or `timeout` passes.
    pub async fn wait_acks(&self, count: usize, timeout: Duration) -> Vec<Ack> {
        self.wait_for(timeout, |state| state.acks.len() >= count)
            .await;
        self.acks()
    }

    /// Waits until at least `count` pings came or `timeout` passes.
    pub async fn wait_pings(&self, count: usize, timeout: Duration) -> Vec<Ping> {
        self.wait_for(timeout, |state| state.pings.len() >= count)
            .await;
        self.pings()
    }

    /// Waits until exactly `count` long connections are open or `timeout` passes; says whether.
    pub async fn wait_open_connections(&self, count: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |state| state.connections.len() == count)
            .await
    }

    async fn wait_for(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a change in between still wakes us.
            let mut changed = std::pin::pin!(self.shared.changed.notified());
            changed.as_mut().enable();
            if done(&self.shared.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(&self.shared.lock());
            }
        }
    }
}

#[cfg(test)]
mod tests;
