//! One exchange over MCP's streamable HTTP transport: POST one JSON-RPC message and read what
//! comes back. A request's answer is either one JSON object (`application/json`) or an SSE
//! stream (`text/event-stream`) carrying it among the server's notifications and requests,
//! which are skipped: this client declares no capabilities, so it is asked for nothing it
//! could serve. Every exchange runs under the per-request timeout and the body cap.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use serde_json::{Value, json};

use carapace_llm::{http_reason, sse};

use crate::Limits;
use crate::error::Error;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// The most of an error body kept for its message.
const MOST_DETAIL_CHARS: usize = 300;

/// Where requests go and under which limits.
pub(crate) struct Endpoint<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a Url,
    /// host[:port], for errors.
    pub server: &'a str,
    pub limits: Limits,
}

/// What every request after initialization carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Session {
    pub id: Option<String>,
    pub protocol: Option<String>,
}

/// A request's answer, and the session id its response named (initialization sets it).
pub(crate) struct Answer {
    pub result: Value,
    pub session_id: Option<String>,
}

/// Sends request `method` with `id` and `params`; the answer's `result`, or what failed.
/// A 404 to a request that carried a session id is [`Error::SessionLost`]: the caller starts
/// a new session and tries again.
pub(crate) async fn request(
    at: &Endpoint<'_>,
    session: &Session,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Answer, Error> {
    let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    within_limit(at, method, async {
        let response = send(at, session, Method::POST, method, Some(&message)).await?;
        let session_id = response
            .headers()
            .get(SESSION_HEADER)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let kind = content_type(response.headers());
        let result = match kind.as_str() {
            "application/json" => {
                let body = read_body(at, method, response).await?;
                let message: Value = serde_json::from_slice(&body)
                    .map_err(|error| bad_reply(at, method, format!("its JSON: {error}")))?;
                match answer_in(at, method, id, message, true) {
                    Some(result) => result?,
                    None => return Err(bad_reply(at, method, "the JSON is not the answer".into())),
                }
            }
            "text/event-stream" => read_stream(at, method, id, response).await?,
            other => {
                let reason = format!(
                    "its content type is {other:?}, not application/json or text/event-stream"
                );
                return Err(bad_reply(at, method, reason));
            }
        };
        Ok(Answer { result, session_id })
    })
    .await
}

/// Sends notification `method` (no params); the server accepts it with 202 (any 2xx is
/// taken: some servers answer 200 with an empty body).
pub(crate) async fn notify(
    at: &Endpoint<'_>,
    session: &Session,
    method: &str,
) -> Result<(), Error> {
    let message = json!({"jsonrpc": "2.0", "method": method});
    within_limit(at, method, async {
        send(at, session, Method::POST, method, Some(&message)).await?;
        Ok(())
    })
    .await
}

/// Ends the session (HTTP DELETE). A server that does not let clients end sessions answers
/// 405, which is fine: the session then simply expires there.
pub(crate) async fn end_session(at: &Endpoint<'_>, session: &Session) -> Result<(), Error> {
    within_limit(at, "DELETE", async {
        match send(at, session, Method::DELETE, "DELETE", None).await {
            Ok(_) | Err(Error::Status { status: 405, .. } | Error::SessionLost { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    })
    .await
}

async fn within_limit<T>(
    at: &Endpoint<'_>,
    method: &str,
    exchange: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(at.limits.timeout, exchange)
        .await
        .map_err(|_| Error::Timeout {
            server: at.server.to_owned(),
            method: method.to_owned(),
            seconds: at.limits.timeout.as_secs_f32(),
        })?
}

/// Sends one HTTP request; a response with a 2xx status, or the error its status means.
async fn send(
    at: &Endpoint<'_>,
    session: &Session,
    verb: Method,
    method: &str,
    message: Option<&Value>,
) -> Result<Response, Error> {
    let mut request = at
        .http
        .request(verb, at.url.clone())
        .header(ACCEPT, "application/json, text/event-stream");
    if let Some(message) = message {
        request = request
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_string());
    }
    // Both were checked to be visible ASCII when they came in, so they always make headers.
    if let Some(id) = session
        .id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        request = request.header(SESSION_HEADER, id);
    }
    if let Some(version) = session.protocol.as_deref() {
        request = request.header(VERSION_HEADER, version);
    }
    let response = request.send().await.map_err(|error| Error::Unreachable {
        server: at.server.to_owned(),
        reason: http_reason(error),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND && session.id.is_some() {
        return Err(Error::SessionLost {
            server: at.server.to_owned(),
        });
    }
    let body = read_body(at, method, response).await.unwrap_or_default();
    Err(Error::Status {
        server: at.server.to_owned(),
        method: method.to_owned(),
        status: status.as_u16(),
        detail: detail(&body),
    })
}

/// The media type of a response, lower-case, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    let value = headers
        .get(CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = value.split(';').next().unwrap_or_default();
    media.trim().to_ascii_lowercase()
}

/// The whole body, at most `limits.max_body` bytes.
async fn read_body(
    at: &Endpoint<'_>,
    method: &str,
    mut response: Response,
) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(at, &mut response).await? {
        body.extend_from_slice(&chunk);
        if body.len() > at.limits.max_body {
            return Err(too_large(at, method));
        }
    }
    Ok(body)
}

/// Reads an SSE stream until the answer to request `id` comes; its result.
async fn read_stream(
    at: &Endpoint<'_>,
    method: &str,
    id: u64,
    mut response: Response,
) -> Result<Value, Error> {
    let mut parser = sse::Parser::new();
    let mut read = 0;
    while let Some(chunk) = next_chunk(at, &mut response).await? {
        read += chunk.len();
        if read > at.limits.max_body {
            return Err(too_large(at, method));
        }
        for event in parser.feed(&chunk) {
            // Events that are not JSON (empty ones that only carry an id to resume from)
            // hold no message.
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if let Some(result) = answer_in(at, method, id, message, false) {
                return result;
            }
        }
    }
    Err(bad_reply(
        at,
        method,
        "the event stream ended without the answer".into(),
    ))
}

async fn next_chunk(at: &Endpoint<'_>, response: &mut Response) -> Result<Option<Bytes>, Error> {
    response.chunk().await.map_err(|error| Error::Unreachable {
        server: at.server.to_owned(),
        reason: format!("the answer broke off: {}", http_reason(error)),
    })
}

/// The outcome `message` holds if it is the answer to request `id`; None if it is another
/// message. `alone`: it is the whole reply, so an error without an id (the server could not
/// read the request at all) is the answer too.
fn answer_in(
    at: &Endpoint<'_>,
    method: &str,
    id: u64,
    message: Value,
    alone: bool,
) -> Option<Result<Value, Error>> {
    let Value::Object(mut message) = message else {
        return None;
    };
    let ours = message.get("id") == Some(&Value::from(id));
    let unaddressed = message.get("id").is_none_or(Value::is_null);
    if let Some(error) = message.remove("error") {
        if ours || (alone && unaddressed) {
            return Some(Err(Error::Rpc {
                server: at.server.to_owned(),
                method: method.to_owned(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), |text| detail(text.as_bytes())),
            }));
        }
        return None;
    }
    if !ours {
        return None;
    }
    Some(
        message
            .remove("result")
            .ok_or_else(|| bad_reply(at, method, "the answer has neither result nor error".into())),
    )
}

fn bad_reply(at: &Endpoint<'_>, method: &str, reason: String) -> Error {
    Error::BadReply {
        server: at.server.to_owned(),
        method: method.to_owned(),
        reason,
    }
}

fn too_large(at: &Endpoint<'_>, method: &str) -> Error {
    Error::TooLarge {
        server: at.server.to_owned(),
        method: method.to_owned(),
        limit_kib: at.limits.max_body >> 10,
    }
}

/// The start of a body, as one line of text for an error message.
fn detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(no details)".into();
    }
    crate::trim::cut(&line, MOST_DETAIL_CHARS)
}
