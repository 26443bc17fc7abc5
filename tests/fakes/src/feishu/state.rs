//! What the fake Feishu server knows: its tenant tokens, every event and card callback injected
//! (and whether the bot acknowledged it), the open long connections, the files it holds, what
//! the bot sent, and the failures a test asked for. Plain data behind one mutex; the handlers
//! never hold the lock across an await.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The server's settings for clients (`ClientConfig`), in the endpoint's answer and in pongs.
/// Intervals are seconds. The defaults are the SDK's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    pub reconnect_count: i64,
    pub reconnect_interval: i64,
    pub reconnect_nonce: i64,
    pub ping_interval: i64,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            reconnect_count: -1,
            reconnect_interval: 120,
            reconnect_nonce: 30,
            ping_interval: 120,
        }
    }
}

impl ClientConfig {
    pub(super) fn to_json(self) -> Value {
        json!({
            "ReconnectCount": self.reconnect_count,
            "ReconnectInterval": self.reconnect_interval,
            "ReconnectNonce": self.reconnect_nonce,
            "PingInterval": self.ping_interval,
        })
    }
}

/// One message the bot sent (`POST /open-apis/im/v1/messages`).
#[derive(Clone, Debug)]
pub struct Sent {
    pub receive_id: String,
    pub receive_id_type: String,
    /// `text`, `image`, `audio`, …
    pub msg_type: String,
    /// The content document, parsed.
    pub content: Value,
    /// The text of a text message.
    pub text: String,
    /// The uploaded image or file an image or audio message names.
    pub bytes: Vec<u8>,
    pub file_name: String,
    /// An interactive card's buttons, (label, data) in order: data is the string
    /// `data` of the button's value, or the whole value as JSON when it has none.
    pub buttons: Vec<(String, String)>,
    pub at: Instant,
}

/// An acknowledgement the bot sent back for an event (or card callback) frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The frame's `message_id` header (the delivery's id, not the chat message's).
    pub delivery_id: String,
    /// What the inject call returned: the chat message (`om_…`) a message event carried, the
    /// event_id of a card callback.
    pub message_id: String,
    /// The `biz_rt` header: how long the bot took, in ms.
    pub biz_rt: Option<String>,
    /// `code` of the payload JSON (200 when handled).
    pub code: Option<i64>,
    /// The payload's `data`: the JSON it holds in base64 (a callback's response, `{}` when it
    /// asks for nothing), None when null or absent, the raw value when it is not base64 JSON.
    pub data: Option<Value>,
}

/// A ping the bot sent.
#[derive(Clone, Debug)]
pub struct Ping {
    /// The service id the frame carried.
    pub service: i32,
    /// The one its connection's URL named.
    pub expected_service: i32,
    pub at: Instant,
}

/// An event the server holds until the bot acknowledges it.
pub(super) struct Event {
    pub delivery_id: String,
    /// What tests know it by: the message id of a message, the event_id of a callback.
    pub message_id: String,
    /// The frames' `type` header: `event`, or `card` for a callback when a test asks.
    pub frame_type: &'static str,
    pub payload: Vec<u8>,
    pub acked: bool,
    /// How many times it went out (whole).
    pub deliveries: usize,
}

/// A file a message carries (`resources/{key}`), or one the bot uploaded.
#[derive(Clone)]
pub(super) struct Resource {
    pub bytes: Vec<u8>,
    pub file_name: String,
}

/// What a connection task is told to do.
pub(super) enum Command {
    /// Send this event, cut into `parts` frames of `frame_type`.
    Deliver {
        delivery_id: String,
        frame_type: &'static str,
        payload: Vec<u8>,
        parts: usize,
    },
    /// Drop the connection without a closing handshake, as a network failure does.
    Drop,
}

pub(super) struct Connection {
    pub commands: mpsc::UnboundedSender<Command>,
}

/// A failure to answer instead of running the method.
#[derive(Clone, Copy, Debug)]
pub(super) struct Failure {
    pub status: u16,
}

pub(super) struct State {
    /// Tokens the server accepts, with when each expires.
    pub tokens: HashMap<String, Instant>,
    /// The token the token endpoint hands out while it has 30 minutes left.
    pub current_token: Option<String>,
    pub token_lifetime: Duration,
    next_number: u64,
    pub events: Vec<Event>,
    /// Tickets the endpoint issued and no connection used yet: ticket → service id.
    pub tickets: HashMap<String, i32>,
    /// Open connections by number.
    pub connections: HashMap<u64, Connection>,
    /// How many connections were ever opened.
    pub connections_opened: usize,
    pub endpoint_config: ClientConfig,
    /// What pongs carry (the endpoint's settings unless a test changed it).
    pub pong_config: Option<ClientConfig>,
    pub answer_pings: bool,
    /// Events are sent in this many frames from now on.
    pub fragments: usize,
    /// The frame type card callbacks go out in from now on.
    pub callback_frame_type: &'static str,
    /// (message_id, key) → the file the message carries.
    pub resources: HashMap<(String, String), Resource>,
    /// Images and files the bot uploaded, by key.
    pub uploads: HashMap<String, Resource>,
    pub unsized_downloads: bool,
    pub sent: Vec<Sent>,
    pub acks: Vec<Ack>,
    pub pings: Vec<Ping>,
    pub requests: Vec<String>,
    /// Endpoint name → failures to answer with, one per call.
    pub failures: HashMap<String, VecDeque<Failure>>,
}

impl State {
    pub fn new() -> State {
        State {
            tokens: HashMap::new(),
            current_token: None,
            token_lifetime: Duration::from_secs(7200),
            next_number: 1,
            events: Vec::new(),
            tickets: HashMap::new(),
            connections: HashMap::new(),
            connections_opened: 0,
            endpoint_config: ClientConfig::default(),
            pong_config: None,
            answer_pings: true,
            fragments: 1,
            callback_frame_type: "event",
            resources: HashMap::new(),
            uploads: HashMap::new(),
            unsized_downloads: false,
            sent: Vec::new(),
            acks: Vec::new(),
            pings: Vec::new(),
            requests: Vec::new(),
            failures: HashMap::new(),
        }
    }

    /// A number never handed out before (ids, keys, tickets).
    pub fn number(&mut self) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        number
    }

    /// An id in Feishu's style: `prefix` and 32 hex digits that differ from the last id's in
    /// more than the final digit.
    pub fn id(&mut self, prefix: &str) -> String {
        let number = self.number();
        let mixed = number.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!("{prefix}{mixed:016x}{number:016x}")
    }

    /// The token the endpoint hands out now: the current one while it has 30 minutes left,
    /// else a new one. Returns it with its remaining seconds.
    pub fn issue_token(&mut self, now: Instant) -> (String, u64) {
        let keep = Duration::from_secs(30 * 60);
        if let Some(token) = &self.current_token
            && let Some(expires) = self.tokens.get(token)
            && expires.saturating_duration_since(now) > keep
        {
            return (
                token.clone(),
                expires.saturating_duration_since(now).as_secs(),
            );
        }
        let token = self.id("t-g1044");
        self.tokens.insert(token.clone(), now + self.token_lifetime);
        self.current_token = Some(token.clone());
        (token, self.token_lifetime.as_secs())
    }

    pub fn token_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|expires| now < *expires)
    }

    /// Stores an `im.message.receive_v1` event for a message from `open_id` in `chat_id` and
    /// sends it to every open connection; returns the message id.
    pub fn push_message(
        &mut self,
        open_id: &str,
        chat_id: &str,
        message_type: &str,
        content: Value,
    ) -> String {
        let message_id = self.id("om_");
        let event_id = self.id("");
        let now = unix_millis().to_string();
        let chat_type = if chat_id.starts_with("oc_p2p") {
            "p2p"
        } else {
            "group"
        };
        let event = json!({
            "schema": "2.0",
            "header": {
                "event_id": event_id,
                "token": "",
                "create_time": now,
                "event_type": "im.message.receive_v1",
                "tenant_key": "2ca1d211f64f6438",
                "app_id": super::APP_ID,
            },
            "event": {
                "sender": {
                    "sender_id": {
                        "union_id": format!("on_{}", open_id.trim_start_matches("ou_")),
                        "user_id": null,
                        "open_id": open_id,
                    },
                    "sender_type": "user",
                    "tenant_key": "2ca1d211f64f6438",
                },
                "message": {
                    "message_id": message_id,
                    "root_id": "",
                    "parent_id": "",
                    "create_time": now,
                    "update_time": now,
                    "chat_id": chat_id,
                    "chat_type": chat_type,
                    "message_type": message_type,
                    "content": content.to_string(),
                    "mentions": null,
                    "user_agent": "Mozilla/5.0 (Macintosh) Lark/7.30.5",
                },
            },
        });
        self.push_event(message_id.clone(), "event", &event);
        message_id
    }

    /// Stores a `card.action.trigger` callback: `open_id` pressed an element whose value is
    /// `value` on a card in `chat_id`. Sends it to every open connection; returns its
    /// event_id. The card's message id is a new one: the fake does not tie presses to the
    /// cards the bot sent.
    pub fn push_card_action(&mut self, open_id: &str, chat_id: &str, value: Value) -> String {
        let event_id = self.id("");
        let message_id = self.id("om_");
        let token = self.id("c-");
        let event = json!({
            "schema": "2.0",
            "header": {
                "event_id": event_id,
                "token": "",
                "create_time": unix_millis().to_string(),
                "event_type": "card.action.trigger",
                "tenant_key": "2ca1d211f64f6438",
                "app_id": super::APP_ID,
            },
            "event": {
                "operator": {
                    "tenant_key": "2ca1d211f64f6438",
                    "open_id": open_id,
                    "union_id": format!("on_{}", open_id.trim_start_matches("ou_")),
                },
                "token": token,
                "action": {"value": value, "tag": "button"},
                "host": "im_message",
                "context": {"open_message_id": message_id, "open_chat_id": chat_id},
            },
        });
        let frame_type = self.callback_frame_type;
        self.push_event(event_id.clone(), frame_type, &event);
        event_id
    }

    /// Stores an event known as `message_id` and sends it to every open connection.
    fn push_event(&mut self, message_id: String, frame_type: &'static str, event: &Value) {
        let delivery_id = self.id("");
        self.events.push(Event {
            delivery_id: delivery_id.clone(),
            message_id,
            frame_type,
            payload: event.to_string().into_bytes(),
            acked: false,
            deliveries: 0,
        });
        let numbers: Vec<u64> = self.connections.keys().copied().collect();
        for number in numbers {
            self.deliver(number, &delivery_id);
        }
    }

    /// Tells connection `number` to send the event `delivery_id`.
    pub fn deliver(&mut self, number: u64, delivery_id: &str) {
        let parts = self.fragments;
        let Some(event) = self
            .events
            .iter_mut()
            .find(|event| event.delivery_id == delivery_id)
        else {
            return;
        };
        let Some(connection) = self.connections.get(&number) else {
            return;
        };
        let command = Command::Deliver {
            delivery_id: event.delivery_id.clone(),
            frame_type: event.frame_type,
            payload: event.payload.clone(),
            parts,
        };
        if connection.commands.send(command).is_ok() {
            event.deliveries += 1;
        }
    }

    /// Sends every event not acknowledged yet to connection `number` (a new connection, or
    /// a test's `redeliver`).
    pub fn deliver_unacked(&mut self, number: u64) {
        let waiting: Vec<String> = self
            .events
            .iter()
            .filter(|event| !event.acked)
            .map(|event| event.delivery_id.clone())
            .collect();
        for delivery_id in waiting {
            self.deliver(number, &delivery_id);
        }
    }

    pub fn take_failure(&mut self, endpoint: &str) -> Option<Failure> {
        self.failures.get_mut(endpoint)?.pop_front()
    }
}

pub(super) fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}
