//! Playing one scripted step as an HTTP response: a slow start, an error, a redirect, or a
//! reply planned from text and tool calls and then sent whole, streamed, streamed with an
//! error event at the end, or cut off mid-body.

use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::script::{Plan, PlannedCall, Script, fragments, pieces, tokens};
use super::{Api, Frames, anthropic, error, openai, with_retry_after};
use crate::server::{self, Body};

/// How a streamed reply ends.
enum Ending {
    Complete,
    CutAfter(usize),
    Error(String),
}

pub(super) async fn play(
    api: Api,
    mut step: Script,
    body: &Value,
    body_len: usize,
    serial: usize,
) -> Response<Body> {
    let request_id = format!("req_fake{serial:06}");
    let (text, calls, ending) = loop {
        match step {
            Script::Slow { delay, then } => {
                tokio::time::sleep(delay).await;
                step = *then;
            }
            Script::Text(text) => break (text, Vec::new(), Ending::Complete),
            Script::Tools { text, calls } => break (pieces(&text), calls, Ending::Complete),
            Script::Cut { text, after } => break (text, Vec::new(), Ending::CutAfter(after)),
            Script::ErrorMidStream { text, message } => {
                break (text, Vec::new(), Ending::Error(message));
            }
            Script::Fail {
                status,
                message,
                retry_after,
            } => return error(api, status, &message, retry_after, &request_id),
            Script::Redirect { status, location } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
                let mut response = server::response(status, "text/plain", Bytes::new());
                if let Ok(location) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, location);
                }
                return response;
            }
            Script::Raw {
                status,
                content_type,
                body,
                retry_after,
            } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                let response = server::response(status, &content_type, body);
                return with_retry_after(response, retry_after);
            }
        }
    };
    let plan = plan(api, serial, text, calls, body_len);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if body.get("stream") != Some(&Value::Bool(true)) {
        return whole(api, serial, model, &plan, ending, &request_id);
    }
    let frames = match api {
        Api::OpenAi => {
            let id = format!("chatcmpl-fake{serial}");
            openai::stream(&id, created(), model, openai::wants_usage(body), &plan)
        }
        Api::Anthropic => anthropic::stream(&format!("msg_fake{serial}"), model, &plan),
    };
    stream(api, frames, ending)
}

fn plan(
    api: Api,
    serial: usize,
    text: Vec<String>,
    calls: Vec<(String, Value)>,
    body_len: usize,
) -> Plan {
    let prefix = match api {
        Api::OpenAi => "call_fake",
        Api::Anthropic => "toolu_fake",
    };
    let calls: Vec<PlannedCall> = calls
        .into_iter()
        .enumerate()
        .map(|(index, (name, arguments))| PlannedCall {
            id: format!("{prefix}{serial}x{index}"),
            name,
            fragments: fragments(&arguments.to_string()),
        })
        .collect();
    let output: usize = text.iter().map(String::len).sum::<usize>()
        + calls
            .iter()
            .map(|call| Plan::arguments(call).len() + call.name.len())
            .sum::<usize>();
    Plan {
        text,
        calls,
        input_tokens: tokens(body_len),
        output_tokens: tokens(output).max(1),
    }
}

fn created() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A non-streamed answer (for clients that do not ask for a stream).
fn whole(
    api: Api,
    serial: usize,
    model: &str,
    plan: &Plan,
    ending: Ending,
    request_id: &str,
) -> Response<Body> {
    let value = match api {
        Api::OpenAi => openai::whole(&format!("chatcmpl-fake{serial}"), created(), model, plan),
        Api::Anthropic => anthropic::whole(&format!("msg_fake{serial}"), model, plan),
    };
    match ending {
        Ending::Complete => server::json(StatusCode::OK, &value),
        Ending::Error(message) => error(api, 500, &message, None, request_id),
        Ending::CutAfter(_) => {
            let text = value.to_string();
            let half = text.len() / 2;
            send_then_cut(
                vec![text.as_bytes()[..half].to_vec()],
                text.len(),
                "application/json",
            )
        }
    }
}

/// Sends the frames of a streamed reply, each in two writes so that events straddle chunks.
fn stream(api: Api, frames: Frames, ending: Ending) -> Response<Body> {
    let Frames {
        opening,
        text,
        rest,
    } = frames;
    let full_len = opening.len()
        + text.iter().map(String::len).sum::<usize>()
        + rest.iter().map(String::len).sum::<usize>();
    let mut sent = vec![opening];
    match ending {
        Ending::Complete => {
            sent.extend(text);
            sent.extend(rest);
        }
        Ending::CutAfter(after) => {
            sent.extend(text.into_iter().take(after));
            let chunks = sent.into_iter().map(String::into_bytes).collect();
            // One byte more than the whole reply, so the body is always short of it.
            return send_then_cut(chunks, full_len + 1, "text/event-stream; charset=utf-8");
        }
        Ending::Error(message) => {
            sent.extend(text);
            sent.push(match api {
                Api::OpenAi => openai::error_frame(&message),
                Api::Anthropic => anthropic::error_frame(&message),
            });
        }
    }
    let (sender, mut response) =
        server::streaming(StatusCode::OK, "text/event-stream; charset=utf-8");
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    tokio::spawn(async move {
        for frame in sent {
            let bytes = Bytes::from(frame);
            let middle = bytes.len() / 2;
            for part in [bytes.slice(..middle), bytes.slice(middle..)] {
                if sender.send(part).await.is_err() {
                    return;
                }
            }
        }
    });
    response
}

/// A response that promises `promised` bytes, sends `chunks`, then ends short: the server
/// drops the connection mid-body, as a provider whose connection dies does.
fn send_then_cut(chunks: Vec<Vec<u8>>, promised: usize, content_type: &str) -> Response<Body> {
    let (sender, mut response) = server::streaming(StatusCode::OK, content_type);
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(promised));
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    response
}
