//! The Bot API methods the fake answers, on the real paths (`/bot<token>/<method>`,
//! `/file/bot<token>/<path>`) with the real envelope (`{"ok":true,"result":…}` or
//! `{"ok":false,"error_code":…,"description":…}`) and the real error texts where we know them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::state::{Failure, Sent, SentKind, State, bot_user};
use crate::form::Params;
use crate::server::{self, Arrival, Body};

/// Telegram lets bots download files of at most 20 MB.
pub(super) const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub(super) struct Shared {
    pub state: Mutex<State>,
    /// Woken when an update is queued (long polls wait on it).
    pub updates_changed: Notify,
    /// Woken when the bot sent something (`wait_sent`).
    pub sent_changed: Notify,
    pub token: String,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) async fn handle(shared: Arc<Shared>, request: Request<Bytes>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&shared, rest);
    }
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return failure(404, "Not Found");
    };
    // Method names are case-insensitive in the Bot API.
    let key = method.to_ascii_lowercase();
    let arrived = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(std::time::Instant::now, |arrival| arrival.0);
    {
        let mut state = shared.lock();
        state.requests.push(method.to_string());
        state.first_request.entry(key.clone()).or_insert(arrived);
        if token != shared.token {
            return failure(401, "Unauthorized");
        }
        if let Some(injected) = state.take_failure(&key) {
            return injected_failure(injected);
        }
    }
    let params = match Params::from_request(&request) {
        Ok(params) => params,
        Err(error) => return failure(400, &format!("Bad Request: {error}")),
    };
    match key.as_str() {
        "getme" => ok(bot_user()),
        "getupdates" => get_updates(&shared, &params).await,
        "deletewebhook" => {
            let had_one = shared.lock().webhook.take().is_some();
            let description = if had_one {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            };
            server::json(
                StatusCode::OK,
                &json!({"ok": true, "result": true, "description": description}),
            )
        }
        "sendmessage" => send_message(&shared, &params),
        "sendvoice" => send_file(&shared, &params, SentKind::Voice),
        "sendphoto" => send_file(&shared, &params, SentKind::Photo),
        "setmycommands" => set_my_commands(&shared, &params),
        "sendchataction" | "setmessagereaction" => chat_only(&params),
        "answercallbackquery" => match params.text("callback_query_id") {
            Some(id) => {
                shared.lock().answered_queries.push(id);
                ok(json!(true))
            }
            None => failure(400, "Bad Request: query ID is empty"),
        },
        "getfile" => get_file(&shared, &params),
        "deletemessage" => delete_message(&shared, &params),
        _ => failure(404, "Not Found"),
    }
}

/// Long polling: confirms what lies below `offset`, then holds the request until an update
/// at or above it exists or `timeout` seconds pass.
async fn get_updates(shared: &Shared, params: &Params) -> Response<Body> {
    let offset = params.int("offset").unwrap_or(0);
    let limit = params.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params.int("timeout").unwrap_or(0).max(0) as u64);
    {
        let mut state = shared.lock();
        if state.webhook.is_some() {
            return failure(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        }
        if let Some(allowed) = params.json("allowed_updates") {
            state.allowed_updates = Some(allowed);
        }
        if offset > 0 {
            state.confirm_below(offset);
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before looking, so an update queued in between still wakes us.
        let mut changed = std::pin::pin!(shared.updates_changed.notified());
        changed.as_mut().enable();
        let batch = shared.lock().take_batch(offset, limit);
        if !batch.is_empty() {
            return ok(Value::Array(batch));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return ok(json!([]));
        }
    }
}

fn send_message(shared: &Shared, params: &Params) -> Response<Body> {
    let Some(chat_id) = params.text("chat_id") else {
        return failure(400, "Bad Request: chat_id is empty");
    };
    let text = params.text("text").unwrap_or_default();
    if text.trim().is_empty() {
        return failure(400, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > TEXT_LIMIT {
        return failure(400, "Bad Request: message is too long");
    }
    let markup = params.json("reply_markup");
    let mut buttons = Vec::new();
    if let Some(markup) = &markup {
        let Some(rows) = markup["inline_keyboard"].as_array() else {
            return failure(
                400,
                "Bad Request: can't parse reply keyboard markup JSON object",
            );
        };
        for button in rows
            .iter()
            .flat_map(|row| row.as_array().into_iter().flatten())
        {
            let (Some(label), Some(data)) =
                (button["text"].as_str(), button["callback_data"].as_str())
            else {
                return failure(400, "Bad Request: can't parse inline keyboard button");
            };
            if data.is_empty() || data.len() > 64 {
                return failure(400, "Bad Request: BUTTON_DATA_INVALID");
            }
            buttons.push((label.to_string(), data.to_string()));
        }
    }
    let message = {
        let mut state = shared.lock();
        state.sent.push(Sent {
            chat_id: chat_id.clone(),
            kind: SentKind::Text,
            text: text.clone(),
            bytes: Vec::new(),
            file_name: String::new(),
            buttons,
            at: std::time::Instant::now(),
        });
        state.bot_message(&chat_id, json!({"text": text}))
    };
    shared.sent_changed.notify_waiters();
    ok(message)
}

/// sendVoice and sendPhoto: the file is a multipart upload, or the file_id of a file the
/// server already holds.
fn send_file(shared: &Shared, params: &Params, kind: SentKind) -> Response<Body> {
    let (field, folder, extension) = match kind {
        SentKind::Voice => ("voice", "voice", "oga"),
        _ => ("photo", "photos", "jpg"),
    };
    let Some(chat_id) = params.text("chat_id") else {
        return failure(400, "Bad Request: chat_id is empty");
    };
    let caption = params.text("caption").unwrap_or_default();
    if caption.encode_utf16().count() > CAPTION_LIMIT {
        return failure(400, "Bad Request: message caption is too long");
    }
    let mut state = shared.lock();
    let (bytes, file_name) = match (params.file(field), params.text(field)) {
        (Some(upload), _) => (upload.bytes.clone(), upload.file_name.clone()),
        (None, Some(file_id)) => match state.files.get(&file_id) {
            Some(file) => (file.bytes.clone(), file.path.clone()),
            None => return failure(400, "Bad Request: wrong file identifier/HTTP URL specified"),
        },
        (None, None) => {
            return failure(
                400,
                &format!("Bad Request: there is no {field} in the request"),
            );
        }
    };
    if bytes.is_empty() {
        return failure(400, "Bad Request: file must be non-empty");
    }
    let size = bytes.len();
    let file_id = state.add_file(folder, extension, bytes.clone());
    state.sent.push(Sent {
        chat_id: chat_id.clone(),
        kind,
        text: caption.clone(),
        bytes,
        file_name,
        buttons: Vec::new(),
        at: std::time::Instant::now(),
    });
    let unique = format!("AgAD{file_id}");
    let mut content = match kind {
        SentKind::Voice => json!({"voice": {
            "file_id": file_id, "file_unique_id": unique,
            "duration": params.int("duration").unwrap_or(0),
            "mime_type": "audio/ogg", "file_size": size
        }}),
        _ => json!({"photo": [
            {"file_id": file_id, "file_unique_id": unique, "file_size": size, "width": 90, "height": 90},
            {"file_id": file_id, "file_unique_id": unique, "file_size": size, "width": 800, "height": 800}
        ]}),
    };
    if !caption.is_empty()
        && let Some(content) = content.as_object_mut()
    {
        content.insert("caption".into(), json!(caption));
    }
    let message = state.bot_message(&chat_id, content);
    drop(state);
    shared.sent_changed.notify_waiters();
    ok(message)
}

fn set_my_commands(shared: &Shared, params: &Params) -> Response<Body> {
    let Some(Value::Array(list)) = params.json("commands") else {
        return failure(400, "Bad Request: can't parse commands JSON object");
    };
    let mut commands = Vec::new();
    for entry in &list {
        let command = entry["command"].as_str().unwrap_or("");
        let description = entry["description"].as_str().unwrap_or("");
        let command_ok = (1..=32).contains(&command.len())
            && command
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !command_ok || description.is_empty() || description.chars().count() > 256 {
            return failure(400, "Bad Request: BOT_COMMAND_INVALID");
        }
        commands.push((command.to_string(), description.to_string()));
    }
    shared.lock().commands = commands;
    ok(json!(true))
}

/// Methods whose only effect is on the user's screen (typing…, a reaction): the fake checks
/// the chat and answers `true`, as the real server does.
fn chat_only(params: &Params) -> Response<Body> {
    if params.text("chat_id").is_none() {
        return failure(400, "Bad Request: chat_id is empty");
    }
    ok(json!(true))
}

/// A person's message in a private chat, as a bot may delete it; any other is "not found" (the
/// real API's answer for an unknown one; a group's needs admin rights the fake bot never has).
fn delete_message(shared: &Shared, params: &Params) -> Response<Body> {
    let (Some(chat_id), Some(message_id)) = (params.int("chat_id"), params.int("message_id"))
    else {
        return failure(400, "Bad Request: chat_id and message_id are required");
    };
    let mut state = shared.lock();
    match state.messages.remove(&(chat_id, message_id)) {
        Some(message) => {
            state.deleted.push(message);
            ok(json!(true))
        }
        None => failure(400, "Bad Request: message to delete not found"),
    }
}

fn get_file(shared: &Shared, params: &Params) -> Response<Body> {
    let file_id = params.text("file_id").unwrap_or_default();
    let state = shared.lock();
    let Some(file) = state.files.get(&file_id) else {
        return failure(400, "Bad Request: invalid file_id");
    };
    let size = file.bytes.len() as u64;
    let reported = file.reported_size.unwrap_or(Some(size));
    if file.reported_size.is_none() && size > DOWNLOAD_LIMIT {
        return failure(400, "Bad Request: file is too big");
    }
    let mut result = json!({
        "file_id": file_id,
        "file_unique_id": format!("AgAD{file_id}"),
        "file_path": file.path,
    });
    if let (Some(size), Some(result)) = (reported, result.as_object_mut()) {
        result.insert("file_size".into(), json!(size));
    }
    ok(result)
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes.
fn download(shared: &Shared, rest: &str) -> Response<Body> {
    let Some((token, path)) = rest.split_once('/') else {
        return failure(404, "Not Found");
    };
    let mut state = shared.lock();
    state.requests.push("file".into());
    if token != shared.token {
        return failure(401, "Unauthorized");
    }
    if let Some(injected) = state.take_failure("file") {
        return injected_failure(injected);
    }
    let Some(file) = state.files.values().find(|file| file.path == path) else {
        return failure(404, "Not Found");
    };
    if !state.unsized_downloads {
        return server::response(
            StatusCode::OK,
            "application/octet-stream",
            file.bytes.clone(),
        );
    }
    let chunks: Vec<Bytes> = file
        .bytes
        .chunks(DOWNLOAD_CHUNK)
        .map(Bytes::copy_from_slice)
        .collect();
    let (sender, response) = server::streaming(StatusCode::OK, "application/octet-stream");
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
    });
    response
}

fn ok(result: Value) -> Response<Body> {
    server::json(StatusCode::OK, &json!({"ok": true, "result": result}))
}

/// The Bot API's error envelope, with the same code as the HTTP status.
fn failure(code: u16, description: &str) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    server::json(
        status,
        &json!({"ok": false, "error_code": code, "description": description}),
    )
}

/// What a test asked for. Gateway errors come as the HTML page the proxy in front of the Bot
/// API serves, not as JSON, so a client must not need a JSON body to classify them.
fn injected_failure(injected: Failure) -> Response<Body> {
    let code = injected.status;
    match code {
        429 => {
            let retry_after = injected.retry_after.unwrap_or(1);
            let status = StatusCode::TOO_MANY_REQUESTS;
            server::json(
                status,
                &json!({
                    "ok": false, "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": {"retry_after": retry_after}
                }),
            )
        }
        500..=599 => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let reason = status.canonical_reason().unwrap_or("Server Error");
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            );
            server::response(status, "text/html", page)
        }
        401 => failure(401, "Unauthorized"),
        403 => failure(403, "Forbidden: bot was blocked by the user"),
        409 => failure(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        ),
        _ => failure(code, "Bad Request: injected failure"),
    }
}
