//! The HTTP side of the fake: the OpenAPI paths the bot calls (token, bot info, send, upload,
//! message resources) and the long connection's bootstrap, with the real envelopes
//! (`{"code":0,"msg":"success","data":…}`) and the real codes where we know them: 10014 for a
//! wrong app secret, 99991661/99991663 for a missing or refused token, 99991400 with HTTP 429
//! and `x-ogw-ratelimit-reset` for rate limits, 230099 for a card it cannot build. Codes for
//! bad parameters (230001, 234001, 234003) and the bootstrap's answer to wrong credentials
//! (514) are stand-ins: the client must not depend on their exact values.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::state::{Failure, Resource, Sent};
use super::{APP_ID, APP_SECRET, BOT_NAME, BOT_OPEN_ID, Shared, card, websocket};
use crate::form::Params;
use crate::server::{self, Body};

/// A text message's request may hold 150 KB.
const TEXT_REQUEST_LIMIT: usize = 150 * 1024;
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub(super) async fn handle(shared: Arc<Shared>, request: Request<Bytes>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let name = match (request.method(), path.as_str()) {
        (&Method::POST, "/open-apis/auth/v3/tenant_access_token/internal") => "token",
        (&Method::GET, "/open-apis/bot/v3/info") => "bot_info",
        (&Method::POST, "/callback/ws/endpoint") => "endpoint",
        (&Method::GET, "/ws/v2") => return websocket::upgrade(&shared, request),
        (&Method::POST, "/open-apis/im/v1/messages") => "messages",
        (&Method::POST, "/open-apis/im/v1/images") => "images",
        (&Method::POST, "/open-apis/im/v1/files") => "files",
        (&Method::GET, path) if resource_path(path).is_some() => "resources",
        _ => return failure(404, 404, "404 page not found"),
    };
    {
        let mut state = shared.lock();
        state.requests.push(name.to_string());
        if let Some(injected) = state.take_failure(name) {
            return injected_failure(injected);
        }
    }
    // The gateway checks the token before anything reads the parameters.
    if !matches!(name, "token" | "endpoint")
        && let Some(refused) = check_token(&shared, &request)
    {
        return refused;
    }
    let mut request = request;
    if request.body().is_empty() {
        // No body is no parameters, whatever the Content-Type says.
        request.headers_mut().remove(hyper::header::CONTENT_TYPE);
    }
    let params = match Params::from_request(&request) {
        Ok(params) => params,
        Err(error) => {
            return failure(
                400,
                99_992_402,
                &format!("field validation failed: {error}"),
            );
        }
    };
    match name {
        "token" => token(&shared, &params),
        "endpoint" => endpoint(&shared, &params),
        "bot_info" => bot_info(),
        "messages" => send(&shared, &params, request.body().len()),
        "images" => upload(&shared, &params, "image", "img_v3_"),
        "files" => upload(&shared, &params, "file", "file_v3_"),
        _ => resource(&shared, &path, &params),
    }
}

fn token(shared: &Shared, params: &Params) -> Response<Body> {
    if params.text("app_id").as_deref() != Some(APP_ID) {
        return failure(400, 10_003, "invalid param");
    }
    if params.text("app_secret").as_deref() != Some(APP_SECRET) {
        return failure(400, 10_014, "app secret invalid");
    }
    let (token, expire) = shared.lock().issue_token(Instant::now());
    server::json(
        StatusCode::OK,
        &json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire}),
    )
}

/// None when the request carries a token the server accepts; else the refusal.
fn check_token(shared: &Shared, request: &Request<Bytes>) -> Option<Response<Body>> {
    let token = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        None => Some(failure(
            400,
            99_991_661,
            "Missing access token for authorization. Please make a request with token attached.",
        )),
        Some(token) if !shared.lock().token_valid(token, Instant::now()) => Some(failure(
            400,
            99_991_663,
            "Invalid access token for authorization. Please make a request with token attached.",
        )),
        Some(_) => None,
    }
}

fn bot_info() -> Response<Body> {
    ok_with(json!({"bot": {
        "activate_status": 2,
        "app_name": BOT_NAME,
        "avatar_url": "https://s1-imfile.feishucdn.com/static-resource/v1/default-avatar",
        "ip_white_list": [],
        "open_id": BOT_OPEN_ID,
    }}))
}

/// The bootstrap: a one-time URL to this server's `/ws/v2`, and the client settings.
fn endpoint(shared: &Shared, params: &Params) -> Response<Body> {
    let right = params.text("AppID").as_deref() == Some(APP_ID)
        && params.text("AppSecret").as_deref() == Some(APP_SECRET);
    if !right {
        return failure(200, 514, "auth failed");
    }
    let mut state = shared.lock();
    let number = state.number();
    let ticket = state.id("");
    let access_key = state.id("");
    let device_id = format!("{}", 7_300_000_000_000_000_000_u64 + number);
    let service_id = 33_554_678 + i32::try_from(number % 1_000_000).unwrap_or(0);
    state.tickets.insert(ticket.clone(), service_id);
    let scheme = if shared.tls { "wss" } else { "ws" };
    let url = format!(
        "{scheme}://{}/ws/v2?fpid=493&aid=552564&device_id={device_id}&access_key={access_key}&service_id={service_id}&ticket={ticket}",
        shared.address
    );
    let config = state.endpoint_config.to_json();
    drop(state);
    server::json(
        StatusCode::OK,
        &json!({"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": config}}),
    )
}

/// `POST /open-apis/im/v1/messages?receive_id_type=…`.
fn send(shared: &Shared, params: &Params, body_size: usize) -> Response<Body> {
    let id_type = params.text("receive_id_type").unwrap_or_default();
    let prefix = match id_type.as_str() {
        "chat_id" => "oc_",
        "open_id" => "ou_",
        "union_id" => "on_",
        "user_id" | "email" => "",
        _ => return failure(400, 99_992_402, "field validation failed: receive_id_type"),
    };
    let receive_id = params.text("receive_id").unwrap_or_default();
    if receive_id.is_empty() || !receive_id.starts_with(prefix) {
        return failure(
            400,
            230_001,
            "Your request contains an invalid request parameter, ext=invalid receive_id.",
        );
    }
    let msg_type = params.text("msg_type").unwrap_or_default();
    let Some(content) = params
        .text("content")
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .filter(Value::is_object)
    else {
        if msg_type == "interactive" {
            let cause = card::refusal("the content is not a JSON object");
            return failure(400, card::REFUSED_CODE, &cause);
        }
        return failure(
            400,
            230_001,
            "Your request contains an invalid request parameter, ext=invalid content.",
        );
    };
    let mut buttons = Vec::new();
    let mut state = shared.lock();
    let (text, resource) = match msg_type.as_str() {
        "text" => {
            let text = content["text"].as_str().unwrap_or("").to_string();
            if text.trim().is_empty() {
                return failure(
                    400,
                    230_001,
                    "Your request contains an invalid request parameter, ext=text is empty.",
                );
            }
            if body_size > TEXT_REQUEST_LIMIT {
                return failure(
                    400,
                    230_025,
                    "The length of the message content reaches its limit.",
                );
            }
            (text, None)
        }
        "image" | "audio" => {
            let key_field = if msg_type == "image" {
                "image_key"
            } else {
                "file_key"
            };
            let key = content[key_field].as_str().unwrap_or("");
            match state.uploads.get(key) {
                Some(upload) => (String::new(), Some(upload.clone())),
                None => {
                    return failure(
                        400,
                        230_001,
                        &format!(
                            "Your request contains an invalid request parameter, ext=invalid {key_field}."
                        ),
                    );
                }
            }
        }
        "interactive" => match card::buttons(&content) {
            Ok(found) => {
                buttons = found;
                (String::new(), None)
            }
            Err(cause) => return failure(400, card::REFUSED_CODE, &card::refusal(&cause)),
        },
        _ => (String::new(), None),
    };
    let resource = resource.unwrap_or(Resource {
        bytes: Vec::new(),
        file_name: String::new(),
    });
    state.sent.push(Sent {
        receive_id: receive_id.clone(),
        receive_id_type: id_type.clone(),
        msg_type: msg_type.clone(),
        content: content.clone(),
        text,
        bytes: resource.bytes,
        file_name: resource.file_name,
        buttons,
        at: Instant::now(),
    });
    let message_id = state.id("om_");
    let chat_id = if id_type == "chat_id" {
        receive_id
    } else {
        state.id("oc_")
    };
    drop(state);
    shared.changed.notify_waiters();
    let now = super::state::unix_millis().to_string();
    ok_with(json!({"data": {
        "message_id": message_id,
        "root_id": "", "parent_id": "",
        "msg_type": msg_type,
        "create_time": now, "update_time": now,
        "deleted": false, "updated": false,
        "chat_id": chat_id,
        "sender": {"id": APP_ID, "id_type": "app_id", "sender_type": "app", "tenant_key": "2ca1d211f64f6438"},
        "body": {"content": content.to_string()},
    }}))
}

/// `POST /open-apis/im/v1/images` (image_type, image) and `/files` (file_type, file_name,
/// file): the bytes are kept under a new key.
fn upload(shared: &Shared, params: &Params, field: &str, prefix: &str) -> Response<Body> {
    let kind_ok = match field {
        "image" => matches!(
            params.text("image_type").as_deref(),
            Some("message" | "avatar")
        ),
        _ => matches!(
            params.text("file_type").as_deref(),
            Some("opus" | "mp4" | "pdf" | "doc" | "xls" | "ppt" | "stream")
        ),
    };
    let Some(upload) = params.file(field).filter(|_| kind_ok) else {
        return failure(400, 234_001, "Invalid request param.");
    };
    if upload.bytes.is_empty() {
        return failure(400, 234_001, "Invalid request param: the file is empty.");
    }
    let file_name = params
        .text("file_name")
        .unwrap_or_else(|| upload.file_name.clone());
    let mut state = shared.lock();
    let key = state.id(prefix);
    state.uploads.insert(
        key.clone(),
        Resource {
            bytes: upload.bytes.clone(),
            file_name,
        },
    );
    let key_field = if field == "image" {
        "image_key"
    } else {
        "file_key"
    };
    ok_with(json!({"data": {key_field: key}}))
}

/// (message_id, file_key) of `/open-apis/im/v1/messages/{message_id}/resources/{file_key}`.
fn resource_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/open-apis/im/v1/messages/")?;
    let (message_id, key) = rest.split_once("/resources/")?;
    (!message_id.is_empty() && !key.is_empty() && !key.contains('/')).then_some((message_id, key))
}

fn resource(shared: &Shared, path: &str, params: &Params) -> Response<Body> {
    let Some((message_id, key)) = resource_path(path) else {
        return failure(404, 404, "404 page not found");
    };
    let wanted = if key.starts_with("img_") {
        "image"
    } else {
        "file"
    };
    if params.text("type").as_deref() != Some(wanted) {
        return failure(400, 234_001, "Invalid request param.");
    }
    let state = shared.lock();
    let Some(resource) = state
        .resources
        .get(&(message_id.to_string(), key.to_string()))
    else {
        return failure(400, 234_003, "File not in msg.");
    };
    let bytes = resource.bytes.clone();
    let chunked = state.unsized_downloads;
    drop(state);
    if !chunked {
        return server::response(StatusCode::OK, "application/octet-stream", bytes);
    }
    let chunks: Vec<Bytes> = bytes
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

/// `{"code":0,"msg":"success", …fields}`.
fn ok_with(fields: Value) -> Response<Body> {
    let mut reply = json!({"code": 0, "msg": "success"});
    if let (Some(reply), Value::Object(fields)) = (reply.as_object_mut(), fields) {
        reply.extend(fields);
    }
    server::json(StatusCode::OK, &reply)
}

fn failure(status: u16, code: i64, msg: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    server::json(status, &json!({"code": code, "msg": msg}))
}

/// What a test asked for: 429 as the gateway's rate limit, 5xx as its HTML page, anything else
/// as an OpenAPI error with that status.
fn injected_failure(injected: Failure) -> Response<Body> {
    match injected.status {
        429 => {
            let mut response = failure(429, 99_991_400, "request trigger frequency limit");
            let headers = response.headers_mut();
            headers.insert(
                "x-ogw-ratelimit-limit",
                hyper::header::HeaderValue::from_static("100"),
            );
            headers.insert(
                "x-ogw-ratelimit-reset",
                hyper::header::HeaderValue::from_static("1"),
            );
            response
        }
        code @ 500..=599 => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let reason = status.canonical_reason().unwrap_or("Server Error");
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            );
            server::response(status, "text/html", page)
        }
        code => failure(code, 99_992_402, "injected failure"),
    }
}
