//! What the fake Telegram server knows: the updates waiting for the bot, the files it holds,
//! what the bot sent, and the failures a test asked for. Plain data behind one mutex; the
//! methods (`methods.rs`) read and change it without ever holding the lock across an await.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// What kind of message the bot sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentKind {
    Text,
    Voice,
    Photo,
}

/// One message the bot sent, in the order the fake received it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub chat_id: String,
    pub kind: SentKind,
    /// The text of a text message, the caption of a photo or voice message.
    pub text: String,
    /// The uploaded file (empty for text).
    pub bytes: Vec<u8>,
    pub file_name: String,
    /// An inline keyboard's buttons, (text, callback_data), row after row.
    pub buttons: Vec<(String, String)>,
    pub at: Instant,
}

/// A file the server holds (sent to the bot, or uploaded by it).
pub(super) struct StoredFile {
    pub path: String,
    pub bytes: Vec<u8>,
    /// What getFile reports, when a test wants it to differ from the real size.
    pub reported_size: Option<Option<u64>>,
}

/// A failure to answer instead of running the method.
#[derive(Clone, Copy, Debug)]
pub(super) struct Failure {
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// The first update id; real ones are large, and nothing should assume they start at 1.
const FIRST_UPDATE_ID: i64 = 700_000_001;

pub(super) struct State {
    /// Updates not yet confirmed, oldest first: (update_id, the update as JSON).
    pub updates: VecDeque<(i64, Value)>,
    next_update_id: i64,
    next_message_id: i64,
    next_file: u64,
    /// When a getUpdates answer first carried each update (kept after confirmation).
    pub delivered: HashMap<i64, Instant>,
    /// The highest offset a getUpdates call passed (0 before any).
    pub confirmed_offset: i64,
    pub allowed_updates: Option<Value>,
    /// The callback_query ids the bot answered.
    pub answered_queries: Vec<String>,
    pub webhook: Option<String>,
    pub files: BTreeMap<String, StoredFile>,
    pub sent: Vec<Sent>,
    /// People's messages by (chat id, message id), for deleteMessage; private chats only.
    pub messages: HashMap<(i64, i64), Value>,
    /// The messages the bot deleted, as they were.
    pub deleted: Vec<Value>,
    pub commands: Vec<(String, String)>,
    pub requests: Vec<String>,
    /// Method name (lowercase) → when the head of its first request arrived.
    pub first_request: HashMap<String, Instant>,
    /// Method name (lowercase) → failures to answer with, one per call.
    pub failures: HashMap<String, VecDeque<Failure>>,
    /// Serve downloads chunked, with no Content-Length, so a client must count while reading.
    pub unsized_downloads: bool,
}

impl State {
    pub fn new() -> State {
        State {
            updates: VecDeque::new(),
            next_update_id: FIRST_UPDATE_ID,
            next_message_id: 1,
            next_file: 1,
            delivered: HashMap::new(),
            confirmed_offset: 0,
            allowed_updates: None,
            answered_queries: Vec::new(),
            webhook: None,
            files: BTreeMap::new(),
            sent: Vec::new(),
            messages: HashMap::new(),
            deleted: Vec::new(),
            commands: Vec::new(),
            requests: Vec::new(),
            first_request: HashMap::new(),
            failures: HashMap::new(),
            unsized_downloads: false,
        }
    }

    /// Queues an update made of `fields` (everything but the update_id); returns its id.
    pub fn push_update(&mut self, mut fields: serde_json::Map<String, Value>) -> i64 {
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        fields.insert("update_id".into(), json!(update_id));
        self.updates.push_back((update_id, Value::Object(fields)));
        update_id
    }

    /// A message from a person in a private chat (or a group when chat_id differs), with
    /// `content` (text, voice, photo, …) merged in.
    pub fn message(
        &mut self,
        user_id: i64,
        chat_id: i64,
        first_name: &str,
        content: Value,
    ) -> Value {
        let chat_type = if chat_id == user_id {
            "private"
        } else {
            "group"
        };
        let mut message = json!({
            "message_id": self.next_message_id(),
            "from": {"id": user_id, "is_bot": false, "first_name": first_name, "language_code": "en"},
            "chat": {"id": chat_id, "type": chat_type, "first_name": first_name},
            "date": unix_now(),
        });
        if let (Some(message), Value::Object(content)) = (message.as_object_mut(), content) {
            message.extend(content);
        }
        if chat_type == "private" {
            let id = message["message_id"].as_i64().unwrap_or_default();
            self.messages.insert((chat_id, id), message.clone());
        }
        message
    }

    /// A message the bot sent, as the send methods return it.
    pub fn bot_message(&mut self, chat_id: &str, content: Value) -> Value {
        let chat_id = chat_id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(chat_id));
        let mut message = json!({
            "message_id": self.next_message_id(),
            "from": bot_user(),
            "chat": {"id": chat_id, "type": "private"},
            "date": unix_now(),
        });
        if let (Some(message), Value::Object(content)) = (message.as_object_mut(), content) {
            message.extend(content);
        }
        message
    }

    fn next_message_id(&mut self) -> i64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }

    /// Stores `bytes` as a file; returns its file_id.
    pub fn add_file(&mut self, folder: &str, extension: &str, bytes: Vec<u8>) -> String {
        let number = self.next_file;
        self.next_file += 1;
        let file_id = format!("BQACAgIAAxkBAAI{number:08}fake");
        let path = format!("{folder}/file_{number}.{extension}");
        self.files.insert(
            file_id.clone(),
            StoredFile {
                path,
                bytes,
                reported_size: None,
            },
        );
        file_id
    }

    /// The next injected failure for `method`, if a test asked for one.
    pub fn take_failure(&mut self, method: &str) -> Option<Failure> {
        self.failures.get_mut(method)?.pop_front()
    }

    /// Forgets every update below `offset`: the bot has seen them.
    pub fn confirm_below(&mut self, offset: i64) {
        self.updates.retain(|(id, _)| *id >= offset);
        self.confirmed_offset = self.confirmed_offset.max(offset);
    }

    /// Up to `limit` updates at or above `offset`, marking when each was first delivered.
    pub fn take_batch(&mut self, offset: i64, limit: usize) -> Vec<Value> {
        let now = Instant::now();
        let batch: Vec<(i64, Value)> = self
            .updates
            .iter()
            .filter(|(id, _)| *id >= offset)
            .take(limit)
            .cloned()
            .collect();
        for (id, _) in &batch {
            self.delivered.entry(*id).or_insert(now);
        }
        batch.into_iter().map(|(_, update)| update).collect()
    }
}

/// The bot's own user (getMe, and the sender of what it sends).
pub(super) fn bot_user() -> Value {
    json!({
        "id": 4_839_574_812_i64,
        "is_bot": true,
        "first_name": "Carapace Test",
        "username": super::BOT_USERNAME,
        "can_join_groups": true,
        "can_read_all_group_messages": false,
        "supports_inline_queries": false
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
