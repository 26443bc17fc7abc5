//! A fake remote MCP server: the streamable HTTP transport (protocol 2025-06-18 and
//! 2025-03-26) on one endpoint, `/mcp`, over plain http on loopback. It checks what a real
//! server checks (the Accept and Content-Type headers, the session id after initialization:
//! 400 without it, 404 for one it does not know, the protocol version header), answers
//! `initialize` with a new `Mcp-Session-Id`, `tools/list` in two pages and `tools/call`
//! (see `tools`), either as one JSON object or as an SSE stream in small pieces with a
//! progress message and a resumption event before the answer, and records every request.

mod tools;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::server::{self, Body, Error, Handler};

/// The MCP endpoint's path.
pub const PATH: &str = "/mcp";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const VERSIONS: [&str; 2] = ["2025-06-18", "2025-03-26"];

/// How the fake answers requests (the transport lets a server choose, per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Json,
    Sse,
}

/// One HTTP request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// POST, GET, DELETE.
    pub http_method: String,
    /// The JSON-RPC method; empty when the body had none.
    pub method: String,
    pub params: Value,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    pub accept: Option<String>,
    /// The HTTP status the fake answered with.
    pub status: u16,
}

struct State {
    framing: Framing,
    sessions: Vec<String>,
    sessions_begun: u32,
    requests: Vec<Recorded>,
}

/// What the fake decided to answer.
enum Reply {
    /// A status with an optional JSON body (errors, 202 for notifications).
    Plain(StatusCode, Option<Value>),
    /// A JSON-RPC response, framed as the fake is set to.
    Answer {
        message: Value,
        session_id: Option<String>,
        delay: Duration,
    },
}

pub struct FakeMcp {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FakeMcp {
    /// Serves on a free port of 127.0.0.1, answering in JSON until told otherwise.
    pub async fn start() -> Result<FakeMcp, Error> {
        let state = Arc::new(Mutex::new(State {
            framing: Framing::Json,
            sessions: Vec::new(),
            sessions_begun: 0,
            requests: Vec::new(),
        }));
        let for_handler = Arc::clone(&state);
        let handler: Handler = Arc::new(move |request| {
            let state = Arc::clone(&for_handler);
            Box::pin(async move { handle(&state, &request).await })
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Setup(format!("bind 127.0.0.1:0: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let task = tokio::spawn(server::serve(listener, None, handler));
        Ok(FakeMcp {
            address,
            state,
            task,
        })
    }

    /// The MCP endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.address)
    }

    pub fn set_framing(&self, framing: Framing) {
        lock(&self.state).framing = framing;
    }

    /// Ends every session, as a restarted server would: requests carrying their ids get 404.
    pub fn forget_sessions(&self) {
        lock(&self.state).sessions.clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// The JSON-RPC methods of the requests so far, with the statuses they got.
    pub fn methods(&self) -> Vec<(String, u16)> {
        let state = lock(&self.state);
        let recorded = state.requests.iter();
        recorded.map(|r| (r.method.clone(), r.status)).collect()
    }
}

impl Drop for FakeMcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock leaves usable state behind.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle(state: &Mutex<State>, request: &Request<Bytes>) -> Response<Body> {
    let headers = request.headers();
    let header = |name| {
        let value = headers.get(name).and_then(|v| v.to_str().ok());
        value.map(str::to_owned)
    };
    let message: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
    let (reply, framing) = {
        let mut state = lock(state);
        let reply = state.reply(request, &message);
        let status = match &reply {
            Reply::Plain(status, _) => status.as_u16(),
            Reply::Answer { .. } => 200,
        };
        state.requests.push(Recorded {
            http_method: request.method().to_string(),
            method: message["method"].as_str().unwrap_or_default().to_owned(),
            params: message["params"].clone(),
            session_id: header(SESSION_HEADER),
            protocol_version: header(VERSION_HEADER),
            accept: header(ACCEPT.as_str()),
            status,
        });
        (reply, state.framing)
    };
    match reply {
        Reply::Plain(status, None) => server::response(status, "text/plain", ""),
        Reply::Plain(status, Some(body)) => server::json(status, &body),
        Reply::Answer {
            message,
            session_id,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut response = match framing {
                Framing::Json => server::json(StatusCode::OK, &message),
                Framing::Sse => sse(&message),
            };
            if let Some(id) = session_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                response.headers_mut().insert(SESSION_HEADER, id);
            }
            response
        }
    }
}

impl State {
    fn reply(&mut self, request: &Request<Bytes>, message: &Value) -> Reply {
        let headers = request.headers();
        if request.uri().path() != PATH {
            return Reply::Plain(StatusCode::NOT_FOUND, None);
        }
        let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
        match *request.method() {
            Method::POST => {}
            Method::DELETE => return self.end_session(session),
            // No stream for messages the client did not ask for.
            _ => return Reply::Plain(StatusCode::METHOD_NOT_ALLOWED, None),
        }
        if let Some(refusal) = refusal(headers, message) {
            return refusal;
        }
        let id = message.get("id").cloned();
        if message["method"] == "initialize" {
            return self.initialize(id.unwrap_or(Value::Null), &message["params"]);
        }
        match session {
            None => {
                return http_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: Mcp-Session-Id header is required",
                );
            }
            Some(session) if !self.sessions.iter().any(|known| known == session) => {
                return http_error(StatusCode::NOT_FOUND, "Session not found");
            }
            Some(_) => {}
        }
        let version = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok());
        if version.is_some_and(|version| !VERSIONS.contains(&version)) {
            return http_error(
                StatusCode::BAD_REQUEST,
                "Bad Request: Unsupported protocol version",
            );
        }
        // Notifications (and responses) are accepted without an answer.
        let Some(id) = id else {
            return Reply::Plain(StatusCode::ACCEPTED, None);
        };
        let params = &message["params"];
        let outcome = match message["method"].as_str().unwrap_or_default() {
            "tools/list" => tools::list(params).map(|result| (result, Duration::ZERO)),
            "tools/call" => tools::call(params).map(|called| (called.result, called.delay)),
            "ping" => Ok((json!({}), Duration::ZERO)),
            other => Err((-32601, format!("Method not found: {other}"))),
        };
        let (message, delay) = match outcome {
            Ok((result, delay)) => (json!({"jsonrpc": "2.0", "id": id, "result": result}), delay),
            Err((code, text)) => (rpc_error(id, code, &text), Duration::ZERO),
        };
        Reply::Answer {
            message,
            session_id: None,
            delay,
        }
    }

    fn initialize(&mut self, id: Value, params: &Value) -> Reply {
        self.sessions_begun += 1;
        let session = format!("fake-session-{:04}", self.sessions_begun);
        self.sessions.push(session.clone());
        let asked = params["protocolVersion"].as_str().unwrap_or_default();
        let version = VERSIONS
            .iter()
            .find(|v| **v == asked)
            .unwrap_or(&VERSIONS[0]);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "fake-mcp", "version": "1.0.0"},
        });
        Reply::Answer {
            message: json!({"jsonrpc": "2.0", "id": id, "result": result}),
            session_id: Some(session),
            delay: Duration::ZERO,
        }
    }

    fn end_session(&mut self, session: Option<&str>) -> Reply {
        let Some(session) = session else {
            return Reply::Plain(StatusCode::BAD_REQUEST, None);
        };
        let before = self.sessions.len();
        self.sessions.retain(|known| known != session);
        if self.sessions.len() == before {
            return Reply::Plain(StatusCode::NOT_FOUND, None);
        }
        Reply::Plain(StatusCode::OK, None)
    }
}

/// What a server refuses before reading the message: a client that cannot take both
/// answer formats, a body that is not JSON.
fn refusal(headers: &HeaderMap, message: &Value) -> Option<Reply> {
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        let text = "Not Acceptable: Client must accept both application/json and text/event-stream";
        return Some(http_error(StatusCode::NOT_ACCEPTABLE, text));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        let text = "Unsupported Media Type: Content-Type must be application/json";
        return Some(http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, text));
    }
    if !message.is_object() {
        let body = rpc_error(
            Value::Null,
            -32700,
            "Parse error: the body is not a JSON-RPC message",
        );
        return Some(Reply::Plain(StatusCode::BAD_REQUEST, Some(body)));
    }
    None
}

/// An HTTP error with a JSON-RPC error body that has no id, as the transport allows.
fn http_error(status: StatusCode, text: &str) -> Reply {
    Reply::Plain(status, Some(rpc_error(Value::Null, -32000, text)))
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// `message` as an SSE stream: an event that only sets a resumption id, a log message the
/// client must skip, then the message itself; sent in pieces of a few bytes.
fn sse(message: &Value) -> Response<Body> {
    let log = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "working on it"}});
    let stream = format!(
        ": fake-mcp\n\nid: 1\ndata:\n\nevent: message\nid: 2\ndata: {log}\n\nevent: message\nid: 3\ndata: {message}\n\n"
    );
    let (sender, response) = server::streaming(StatusCode::OK, "text/event-stream");
    tokio::spawn(async move {
        // Small pieces split lines and events everywhere; big answers in 64 pieces.
        let piece_len = (stream.len() / 64).max(7);
        for piece in stream.as_bytes().chunks(piece_len) {
            if sender.send(Bytes::copy_from_slice(piece)).await.is_err() {
                return;
            }
        }
    });
    response
}
