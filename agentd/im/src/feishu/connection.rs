//! One long connection: the WebSocket handshake, then a task that owns the socket for as long
//! as it lives. The task pings every PingInterval (a pong brings new settings), puts split
//! events back together, hands whole events (card callbacks included) to `receive.rs` and
//! writes the acknowledgements it is given. Reading, pinging and acknowledging go on while the
//! core stores a batch, so a slow store does not look like a dead client to the server.
//!
//! The connection counts as dead (and the task ends, closing the socket) when the server
//! closes it, when a read or write fails, or when two pings in a row go unanswered by any
//! frame: a half-open TCP connection behind a NAT would otherwise leave the box deaf for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::endpoint::{ClientConfig, Endpoint, TOO_MANY_CONNECTIONS, too_many_connections};
use super::fragments::Fragments;
use super::frame::{self, Answer, Frame};
use super::{CALL_TIMEOUT, CHANNEL};
use crate::Error;

/// Whole events waiting for `next_batch`. One that finds the queue full is dropped unacked
/// (the server sends it again), so a core that stops asking cannot make the box hoard them.
const QUEUE: usize = 256;
/// No frame from the server is bigger (events larger than a frame come split).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Pings in a row that may go unanswered before the connection counts as dead.
const UNANSWERED_PINGS: u32 = 2;

/// A whole event: the frame that completed it (kept to acknowledge it) and its payload.
pub(super) struct Delivery {
    pub frame: Frame,
    pub payload: Vec<u8>,
    pub received: Instant,
}

pub(super) struct Connection {
    /// Events, then (when the task ends) why it ended.
    events: mpsc::Receiver<Result<Delivery, String>>,
    acks: mpsc::UnboundedSender<Frame>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Connection {
    /// Connects to the endpoint's URL and starts the task.
    pub async fn open(
        endpoint: Endpoint,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Connection, Error> {
        let connector = match endpoint.url.scheme() {
            "wss" => Connector::Rustls(tls),
            _ => Connector::Plain,
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let handshake = tokio_tungstenite::connect_async_tls_with_config(
            endpoint.url.as_str(),
            Some(config),
            true,
            Some(connector),
        );
        let (socket, _response) = tokio::time::timeout(CALL_TIMEOUT, handshake)
            .await
            .map_err(|_| Error::Unreachable {
                channel: CHANNEL,
                detail: "the long connection's handshake timed out".into(),
            })?
            .map_err(handshake_error)?;
        let (events, receiver) = mpsc::channel(QUEUE);
        let (acks, ack_receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            socket,
            endpoint.service_id,
            endpoint.ping_interval,
            events,
            ack_receiver,
        ));
        Ok(Connection {
            events: receiver,
            acks,
            task,
        })
    }

    /// The next whole event, or why the connection ended.
    pub async fn next(&mut self) -> Result<Delivery, String> {
        self.events
            .recv()
            .await
            .unwrap_or_else(|| Err(closed_quietly()))
    }

    /// An event that is already waiting, if any.
    pub fn try_next(&mut self) -> Option<Result<Delivery, String>> {
        match self.events.try_recv() {
            Ok(next) => Some(next),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(closed_quietly())),
        }
    }

    /// Acknowledges an event handled since `received`. One the connection dies before writing
    /// is sent again by the server (and dropped by the core as a duplicate).
    pub fn acknowledge(&self, frame: Frame, received: Instant, answer: Answer) {
        let _ = self
            .acks
            .send(frame.into_ack(received.elapsed().as_millis(), answer));
    }
}

fn closed_quietly() -> String {
    "the long connection ended".into()
}

/// A refused handshake: the server says why in `Handshake-*` headers.
fn handshake_error(error: tungstenite::Error) -> Error {
    let tungstenite::Error::Http(response) = error else {
        return Error::Unreachable {
            channel: CHANNEL,
            detail: format!("the long connection's handshake: {error}"),
        };
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let status: i64 = header("Handshake-Status").parse().unwrap_or(0);
    let auth_code: i64 = header("Handshake-Autherrcode").parse().unwrap_or(0);
    let detail = format!(
        "the long connection's handshake: HTTP {} (status {status}: {})",
        response.status().as_u16(),
        header("Handshake-Msg")
    );
    match (status, auth_code) {
        (403, _) => Error::Unauthorized {
            channel: CHANNEL,
            detail,
        },
        (514, TOO_MANY_CONNECTIONS) => too_many_connections(&detail),
        _ => Error::Unreachable {
            channel: CHANNEL,
            detail,
        },
    }
}

/// The task: serves the socket until it dies, then says why.
async fn run(
    mut socket: Socket,
    service: i32,
    ping_interval: Duration,
    events: mpsc::Sender<Result<Delivery, String>>,
    mut acks: mpsc::UnboundedReceiver<Frame>,
) {
    let reason = serve(&mut socket, service, ping_interval, &events, &mut acks).await;
    // A full queue cannot take the reason; the closed channel then says it.
    let _ = events.try_send(Err(reason));
}

async fn serve(
    socket: &mut Socket,
    service: i32,
    mut ping_interval: Duration,
    events: &mpsc::Sender<Result<Delivery, String>>,
    acks: &mut mpsc::UnboundedReceiver<Frame>,
) -> String {
    let mut fragments = Fragments::default();
    // The first ping goes out at once, as the SDK's does: its pong brings the settings.
    let mut last_ping = tokio::time::Instant::now();
    let mut next_ping = last_ping;
    let mut unanswered = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_ping) => {
                if unanswered >= UNANSWERED_PINGS {
                    return format!("the server answered none of the last {unanswered} pings");
                }
                if let Err(error) = write(socket, Frame::ping(service)).await {
                    return error;
                }
                unanswered += 1;
                last_ping = tokio::time::Instant::now();
                next_ping = last_ping + ping_interval;
            }
            ack = acks.recv() => match ack {
                Some(frame) => {
                    if let Err(error) = write(socket, frame).await {
                        return error;
                    }
                }
                None => return closed_quietly(),
            },
            message = socket.next() => {
                let bytes = match message {
                    None | Some(Ok(Message::Close(_))) => {
                        return "the server closed the long connection".into();
                    }
                    Some(Err(error)) => return format!("the long connection broke: {error}"),
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    // WebSocket pings are answered by tungstenite; text frames are not ours.
                    Some(Ok(_)) => {
                        unanswered = 0;
                        continue;
                    }
                };
                unanswered = 0;
                let Some(frame) = Frame::from_bytes(&bytes) else {
                    continue;
                };
                match handle(frame, &mut fragments, Instant::now()) {
                    Handled::Settings(config) => {
                        if let Some(interval) = config.ping() {
                            ping_interval = interval;
                            next_ping = last_ping + ping_interval;
                        }
                    }
                    Handled::Event(delivery) => {
                        let _ = events.try_send(Ok(delivery));
                    }
                    Handled::Nothing => {}
                }
            }
        }
    }
}

async fn write(socket: &mut Socket, frame: Frame) -> Result<(), String> {
    socket
        .send(Message::binary(frame.to_bytes()))
        .await
        .map_err(|error| format!("writing to the long connection failed: {error}"))
}

/// What one frame from the server means.
enum Handled {
    /// A pong, with the server's settings.
    Settings(ClientConfig),
    /// A whole event or card callback.
    Event(Delivery),
    /// A part of one, or anything else we do not take.
    Nothing,
}

fn handle(mut frame: Frame, fragments: &mut Fragments, now: Instant) -> Handled {
    match (frame.method, frame.header("type")) {
        (frame::CONTROL, Some("pong")) => {
            let config = frame
                .payload
                .as_deref()
                .and_then(|payload| serde_json::from_slice(payload).ok())
                .unwrap_or_default();
            Handled::Settings(config)
        }
        // Card callbacks (`card.action.trigger`) come as `event` frames as far as the official
        // SDKs show (Go and Node read nothing else and answer callbacks there); the protocol
        // also names a `card` type, which reports say carries them too. Both are read alike:
        // the payload's own event_type says what it is.
        (frame::DATA, Some("event" | "card")) => {
            let sum = frame.number("sum").unwrap_or(1);
            let seq = frame.number("seq").unwrap_or(0);
            let id = frame.header("message_id").unwrap_or("").to_string();
            let part = frame.payload.take().unwrap_or_default();
            match fragments.add(&id, sum, seq, part, now) {
                Some(payload) => Handled::Event(Delivery {
                    frame,
                    payload,
                    received: now,
                }),
                None => Handled::Nothing,
            }
        }
        _ => Handled::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frame::header;

    fn data(id: &str, sum: usize, seq: usize, payload: &[u8]) -> Frame {
        Frame {
            service: 5,
            method: frame::DATA,
            headers: vec![
                header("type", "event"),
                header("message_id", id),
                header("sum", &sum.to_string()),
                header("seq", &seq.to_string()),
            ],
            payload: Some(payload.to_vec()),
            ..Frame::default()
        }
    }

    #[test]
    fn frames_become_events_settings_or_nothing() {
        let mut fragments = Fragments::default();
        let now = Instant::now();
        assert!(matches!(
            handle(data("a", 2, 1, b"rld"), &mut fragments, now),
            Handled::Nothing
        ));
        let Handled::Event(delivery) = handle(data("a", 2, 0, b"wo"), &mut fragments, now) else {
            panic!("the second part completes the event");
        };
        assert_eq!(delivery.payload, b"world");
        assert_eq!(delivery.frame.header("seq"), Some("0"));
        assert_eq!(
            delivery.frame.payload, None,
            "the payload moved out of the frame"
        );

        let pong = Frame {
            method: frame::CONTROL,
            headers: vec![header("type", "pong")],
            payload: Some(br#"{"PingInterval":7}"#.to_vec()),
            ..Frame::default()
        };
        let Handled::Settings(config) = handle(pong, &mut fragments, now) else {
            panic!("a pong carries settings");
        };
        assert_eq!(config.ping(), Some(Duration::from_secs(7)));

        // A card frame is delivered as an event frame is, split ones put together alike.
        let mut card = data("c", 2, 1, b"}");
        card.headers[0] = header("type", "card");
        assert!(matches!(
            handle(card.clone(), &mut fragments, now),
            Handled::Nothing
        ));
        card.payload = Some(b"{".to_vec());
        card.headers[3] = header("seq", "0");
        let Handled::Event(delivery) = handle(card, &mut fragments, now) else {
            panic!("a card frame is delivered");
        };
        assert_eq!(delivery.payload, b"{}");
        assert_eq!(delivery.frame.header("type"), Some("card"));

        let mut other = data("o", 1, 0, b"{}");
        other.headers[0] = header("type", "unknown");
        assert!(matches!(
            handle(other, &mut fragments, now),
            Handled::Nothing
        ));
    }

    #[test]
    fn garbage_from_the_server_is_dropped_without_a_panic() {
        // Random bytes, and random frames with event headers, through everything that reads
        // what the server sends (a cheap stand-in for a fuzzer; the state is a xorshift).
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut fragments = Fragments::default();
        let now = Instant::now();
        for round in 0..2000 {
            let length = (random() % 200) as usize;
            let bytes: Vec<u8> = (0..length).map(|_| random() as u8).collect();
            if let Some(frame) = Frame::from_bytes(&bytes) {
                let _ = handle(frame, &mut fragments, now);
            }
            let sum = (random() % 4) as usize;
            let seq = (random() % 4) as usize;
            let frame = data(&format!("m{}", round % 7), sum, seq, &bytes);
            if let Handled::Event(delivery) = handle(frame, &mut fragments, now) {
                let _ = crate::feishu::incoming::read(&delivery.payload);
            }
        }
    }
}
