//! The long connection's server side, on the fake's own listener: `GET /ws/v2?…&ticket=…`
//! upgrades to a WebSocket (hyper's upgrade, then tungstenite on the raw stream), and a task
//! per connection sends events and card callbacks as protobuf data frames, answers pings with
//! pongs carrying the client settings, and records acknowledgements.
//!
//! Like the real server, a new connection first gets every event not acknowledged yet: that
//! is what makes delivery at least once across a client crash or a dropped connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Shared;
use super::frame::{self, Frame, header};
use super::state::{Ack, Command, Connection, Ping};
use crate::server::{self, Body};

pub(super) fn upgrade(shared: &Arc<Shared>, mut request: Request<Bytes>) -> Response<Body> {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let wants_websocket = request
        .headers()
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    let Some(key) = request.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return server::response(StatusCode::BAD_REQUEST, "text/plain", "not a WebSocket");
    };
    if !wants_websocket {
        return server::response(StatusCode::BAD_REQUEST, "text/plain", "not a WebSocket");
    }
    let (number, service_id, commands) = {
        let mut state = shared.lock();
        state.requests.push("websocket".into());
        if let Some(failure) = state.take_failure("websocket") {
            return refused(failure.status, 0, "injected failure");
        }
        let ticket = query.get("ticket").cloned().unwrap_or_default();
        let Some(service_id) = state.tickets.remove(&ticket) else {
            return refused(403, 0, "invalid ticket");
        };
        let number = state.number();
        let (sender, commands) = mpsc::unbounded_channel();
        state
            .connections
            .insert(number, Connection { commands: sender });
        state.connections_opened += 1;
        state.deliver_unacked(number);
        (number, service_id, commands)
    };
    shared.changed.notify_waiters();
    let on_upgrade = hyper::upgrade::on(&mut request);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            serve(&shared, service_id, socket, commands).await;
        }
        shared.lock().connections.remove(&number);
        shared.changed.notify_waiters();
    });
    let mut response = Response::new(server::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// A refused handshake, with the reasons in the `Handshake-*` headers as the real server
/// gives them.
fn refused(status: u16, auth_code: i64, message: &str) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = server::response(code, "text/plain", message.to_string());
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("Handshake-Status", status.to_string());
    set("Handshake-Msg", message.to_string());
    if auth_code != 0 {
        set("Handshake-Autherrcode", auth_code.to_string());
    }
    response
}

async fn serve<S>(
    shared: &Shared,
    service_id: i32,
    mut socket: WebSocketStream<S>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seq_id = 0;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Drop) => return,
                Some(Command::Deliver { delivery_id, frame_type, payload, parts }) => {
                    let frames = event_frames(
                        service_id, frame_type, &delivery_id, &payload, parts, &mut seq_id,
                    );
                    for frame in frames {
                        if socket.send(Message::binary(frame.to_bytes())).await.is_err() {
                            return;
                        }
                    }
                }
            },
            message = socket.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(reply) = received(shared, service_id, &bytes)
                        && socket.send(Message::binary(reply.to_bytes())).await.is_err()
                    {
                        return;
                    }
                }
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The frames that carry one event: `parts` of them (at most one per byte) of `frame_type`,
/// sharing the delivery's `message_id`, with `sum` and `seq` headers.
fn event_frames(
    service_id: i32,
    frame_type: &str,
    delivery_id: &str,
    payload: &[u8],
    parts: usize,
    seq_id: &mut u64,
) -> Vec<Frame> {
    let sum = parts.clamp(1, payload.len().max(1));
    let size = payload.len().div_ceil(sum).max(1);
    let trace_id = format!("{:016x}", payload.len() as u64 ^ 0x5bd1_e995);
    let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
    while chunks.len() < sum {
        chunks.push(&[]);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(seq, chunk)| {
            *seq_id += 1;
            Frame {
                seq_id: *seq_id,
                log_id: 7_000_000_000 + *seq_id,
                service: service_id,
                method: frame::DATA,
                headers: vec![
                    header("type", frame_type),
                    header("message_id", delivery_id),
                    header("sum", &sum.to_string()),
                    header("seq", &seq.to_string()),
                    header("trace_id", &trace_id),
                ],
                payload: Some(chunk.to_vec()),
                ..Frame::default()
            }
        })
        .collect()
}

/// Records what the client sent; returns the answer to send back (a pong), if any.
fn received(shared: &Shared, service_id: i32, bytes: &[u8]) -> Option<Frame> {
    let frame = Frame::from_bytes(bytes)?;
    let mut state = shared.lock();
    let reply = match (frame.method, frame.header("type")) {
        (frame::CONTROL, Some("ping")) => {
            state.pings.push(Ping {
                service: frame.service,
                expected_service: service_id,
                at: Instant::now(),
            });
            let config = state.pong_config.unwrap_or(state.endpoint_config);
            state.answer_pings.then(|| Frame {
                service: service_id,
                method: frame::CONTROL,
                headers: vec![header("type", "pong")],
                payload: Some(config.to_json().to_string().into_bytes()),
                ..Frame::default()
            })
        }
        // An acknowledgement is the frame sent back, whatever its type.
        (frame::DATA, Some("event" | "card")) => {
            let delivery_id = frame.header("message_id").unwrap_or("").to_string();
            let payload = frame
                .payload
                .as_deref()
                .and_then(|payload| serde_json::from_slice::<Value>(payload).ok())
                .unwrap_or(Value::Null);
            let code = payload["code"].as_i64();
            let mut message_id = String::new();
            if let Some(event) = state
                .events
                .iter_mut()
                .find(|event| event.delivery_id == delivery_id)
            {
                event.acked |= code == Some(200);
                message_id = event.message_id.clone();
            }
            state.acks.push(Ack {
                delivery_id,
                message_id,
                biz_rt: frame.header("biz_rt").map(str::to_string),
                code,
                data: answer_data(&payload["data"]),
            });
            None
        }
        _ => None,
    };
    drop(state);
    shared.changed.notify_waiters();
    reply
}

/// An acknowledgement's `data`: the SDKs send a handler's response as base64 JSON (Go's
/// encoding/json writes `[]byte` so). Null is None; anything else is kept as it came.
fn answer_data(data: &Value) -> Option<Value> {
    let text = match data {
        Value::Null => return None,
        Value::String(text) => text,
        other => return Some(other.clone()),
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .or_else(|| Some(data.clone()))
}
