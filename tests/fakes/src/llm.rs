//! A fake LLM provider serving both the OpenAI chat completions API (`/v1/chat/completions`
//! and `/chat/completions`) and the Anthropic Messages API (`/v1/messages`) on one listener,
//! in their real wire formats. It checks the key like the real ones (a 401 in the API's own
//! shape), plays the steps a test queued (text, tool calls, HTTP errors, a stream that dies,
//! a slow first byte), answers "ok: <last message>" when the queue is empty (its end only,
//! when a bench set a limit), and records every request for the test to inspect.

mod anthropic;
mod images;
mod openai;
mod play;
mod script;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use script::Script;
use script::pieces;

use crate::server::{self, Arrival, Body, Error, Handler};

/// The key a new fake expects until [`FakeLlm::set_key`] changes it.
pub const DEFAULT_KEY: &str = "sk-fake-0123456789abcdef";

/// Which API a request spoke, by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When the request head arrived.
    pub arrived: Instant,
    pub path: String,
    /// `None` for a path neither API has.
    pub api: Option<Api>,
    /// The body as JSON (`Null` when it was not JSON).
    pub body: Value,
    pub body_len: usize,
    /// Whether the request carried the expected key in its API's header.
    pub key_ok: bool,
}

/// A rendered streamed reply: the opening events, one frame per text piece, then the rest
/// (tool calls, the stop, usage, the end marker). A cut stream stops inside `text`.
pub(crate) struct Frames {
    pub opening: String,
    pub text: Vec<String>,
    pub rest: Vec<String>,
}

struct State {
    key: String,
    script: VecDeque<Script>,
    /// The most characters of the last message the default answer echoes.
    answer_limit: Option<usize>,
    requests: Vec<Recorded>,
}

struct Shared {
    state: Mutex<State>,
    /// How many requests were recorded, for waiting on.
    count: watch::Sender<usize>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves usable state behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct FakeLlm {
    address: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeLlm {
    /// Binds `address` (port 0 picks one) and serves there, over TLS when `tls` is given.
    pub async fn start(address: SocketAddr, tls: Option<TlsAcceptor>) -> Result<FakeLlm, Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| Error::Setup(format!("bind {address}: {e}")))?;
        FakeLlm::serve(listener, tls)
    }

    /// Serves on a listener the caller bound (inside a network namespace, say).
    pub fn serve(listener: TcpListener, tls: Option<TlsAcceptor>) -> Result<FakeLlm, Error> {
        let address = listener
            .local_addr()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                key: DEFAULT_KEY.to_owned(),
                script: VecDeque::new(),
                answer_limit: None,
                requests: Vec::new(),
            }),
            count: watch::Sender::new(0),
        });
        let for_handler = Arc::clone(&shared);
        let handler: Handler = Arc::new(move |request| {
            let shared = Arc::clone(&for_handler);
            Box::pin(async move { handle(&shared, request).await })
        });
        let tls_on = tls.is_some();
        let task = tokio::spawn(server::serve(listener, tls, handler));
        Ok(FakeLlm {
            address,
            tls: tls_on,
            shared,
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL a client should be configured with for `api`.
    pub fn base_url(&self, api: Api) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match api {
            Api::OpenAi => format!("{scheme}://{}/v1", self.address),
            Api::Anthropic => format!("{scheme}://{}", self.address),
        }
    }

    /// Queues what the next answerable request gets.
    pub fn push(&self, step: Script) {
        self.shared.state().script.push_back(step);
    }

    /// Makes the default answer echo only the last `chars` characters of the last message,
    /// as a model asked for something short keeps it short (a bench whose client asks for
    /// summaries of the whole conversation would otherwise see them grow without end).
    pub fn set_answer_limit(&self, chars: usize) {
        self.shared.state().answer_limit = Some(chars);
    }

    /// The key requests must carry from now on.
    pub fn set_key(&self, key: &str) {
        key.clone_into(&mut self.shared.state().key);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.state().requests.clone()
    }

    /// The requests from the `first`th on (0-based), in arrival order: a bench that sends a
    /// thousand turns reads each turn's requests without copying all the earlier ones.
    pub fn requests_from(&self, first: usize) -> Vec<Recorded> {
        let state = self.shared.state();
        state.requests.get(first..).unwrap_or_default().to_vec()
    }

    /// Waits until at least `count` requests came (then returns them all), or `timeout`.
    pub async fn wait_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Recorded>, Error> {
        let mut seen = self.shared.count.subscribe();
        let enough = tokio::time::timeout(timeout, seen.wait_for(|n| *n >= count)).await;
        match enough {
            Ok(Ok(_)) => Ok(self.requests()),
            _ => Err(Error::Waited {
                waited_ms: timeout.as_millis(),
                wanted: count,
                got: self.requests().len(),
            }),
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(shared: &Shared, request: Request<Bytes>) -> Response<Body> {
    let arrived = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |arrival| arrival.0);
    let path = request.uri().path().to_owned();
    let api = match (request.method() == Method::POST, path.as_str()) {
        (true, "/v1/chat/completions" | "/chat/completions") => Some(Api::OpenAi),
        (true, "/v1/messages") => Some(Api::Anthropic),
        _ => None,
    };
    let headers = request.headers();
    let body: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
    let (serial, key_ok, step, answer_limit) = {
        let mut state = shared.state();
        let key_ok = match api {
            Some(Api::OpenAi) => openai::key_matches(headers, &state.key),
            Some(Api::Anthropic) => anthropic::key_matches(headers, &state.key),
            None => false,
        };
        let serial = state.requests.len() + 1;
        state.requests.push(Recorded {
            arrived,
            path: path.clone(),
            api,
            body: body.clone(),
            body_len: request.body().len(),
            key_ok,
        });
        // Only a request the API would accept uses up a scripted step.
        let answerable = key_ok && problem(api, headers, &body).is_none();
        let step = if answerable {
            state.script.pop_front()
        } else {
            None
        };
        (serial, key_ok, step, state.answer_limit)
    };
    shared.count.send_modify(|count| *count += 1);
    let Some(api) = api else {
        let message = format!("Invalid URL ({} {path})", request.method());
        return server::json(StatusCode::NOT_FOUND, &openai::error_body(404, &message));
    };
    let request_id = format!("req_fake{serial:06}");
    if !key_ok {
        let body = match api {
            Api::OpenAi => openai::unauthorized(headers),
            Api::Anthropic => anthropic::unauthorized(headers, &request_id),
        };
        return server::json(StatusCode::UNAUTHORIZED, &body);
    }
    if let Some(message) = problem(Some(api), headers, &body) {
        return error(api, 400, &message, None, &request_id);
    }
    let step = step.unwrap_or_else(|| {
        let last = match api {
            Api::OpenAi => openai::last_text(&body),
            Api::Anthropic => anthropic::last_text(&body),
        };
        Script::Text(pieces(&format!("ok: {}", tail(&last, answer_limit))))
    });
    play::play(api, step, &body, request.body().len(), serial).await
}

/// The last `limit` characters of `text` (all of it without a limit).
fn tail(text: &str, limit: Option<usize>) -> &str {
    let Some(limit) = limit else { return text };
    let skip = text.chars().count().saturating_sub(limit);
    text.char_indices()
        .nth(skip)
        .map_or("", |(at, _)| &text[at..])
}

/// What the real API would refuse with a 400 before answering.
fn problem(api: Option<Api>, headers: &HeaderMap, body: &Value) -> Option<String> {
    if body.is_null() {
        return Some("We could not parse the JSON body of your request.".into());
    }
    let (malformed, images) = match api {
        Some(Api::OpenAi) => (openai::malformed(body), images::openai(body)),
        Some(Api::Anthropic) => (anthropic::malformed(headers, body), images::anthropic(body)),
        None => return None,
    };
    malformed.or_else(|| images.into_iter().find_map(Result::err))
}

/// The images a recorded request showed the model, decoded (either API's format).
pub fn images_in(body: &Value) -> Vec<Vec<u8>> {
    images::openai(body)
        .into_iter()
        .chain(images::anthropic(body))
        .filter_map(Result::ok)
        .collect()
}

/// An HTTP error with the API's own error body, and `retry-after` when given.
pub(crate) fn error(
    api: Api,
    status: u16,
    message: &str,
    retry_after: Option<u64>,
    request_id: &str,
) -> Response<Body> {
    let body = match api {
        Api::OpenAi => openai::error_body(status, message),
        Api::Anthropic => anthropic::error_body(status, message, request_id),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_retry_after(server::json(status, &body), retry_after)
}

/// `response` with a `retry-after: <seconds>` header when `retry_after` is given.
pub(crate) fn with_retry_after(
    mut response: Response<Body>,
    retry_after: Option<u64>,
) -> Response<Body> {
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn the_answer_limit_keeps_the_end_of_the_message() {
        assert_eq!(tail("note 1: hello", None), "note 1: hello");
        assert_eq!(tail("note 1: hello", Some(5)), "hello");
        assert_eq!(tail("héllo", Some(4)), "éllo");
        assert_eq!(tail("hi", Some(5)), "hi");
        assert_eq!(tail("hi", Some(0)), "");
    }
}
