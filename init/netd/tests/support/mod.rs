//! What the stub's tests and its benchmark share: a fake upstream resolver on loopback, a
//! policy and a sink that record what they are asked, a hand-moved clock, and DNS clients.
//! (The benchmark includes this file by path, so each part is used by one or the other.)
#![allow(dead_code)]

pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carapace_netd::dns::{AllowSink, Clock, NamePolicy};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long a test client waits for any reply before failing the test.
pub const CLIENT_PATIENCE: Duration = Duration::from_secs(5);

/// Exact names mapped to their ports.
#[derive(Debug, Default)]
pub struct ListPolicy(pub HashMap<String, Vec<u16>>);

impl ListPolicy {
    pub fn of(entries: &[(&str, &[u16])]) -> Self {
        Self(
            entries
                .iter()
                .map(|(name, ports)| (name.to_string(), ports.to_vec()))
                .collect(),
        )
    }
}

impl NamePolicy for ListPolicy {
    fn ports(&self, name: &str) -> Option<Vec<u16>> {
        self.0.get(name).cloned()
    }
}

/// One `allow` call as the sink saw it.
#[derive(Debug, Clone)]
pub struct SinkCall {
    pub entries: Vec<(IpAddr, u16)>,
    pub timeout: Duration,
    pub finished_at: Instant,
}

/// Records every call; can be told to take its time or to fail.
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub calls: Mutex<Vec<SinkCall>>,
    pub delay: Duration,
    pub failing: AtomicBool,
}

impl RecordingSink {
    pub fn calls(&self) -> Vec<SinkCall> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }
}

/// Lets a test keep the sink after handing it to the stub.
#[derive(Debug, Default, Clone)]
pub struct SharedSink(pub Arc<RecordingSink>);

impl AllowSink for SharedSink {
    async fn allow(&self, entries: Vec<(IpAddr, u16)>, timeout: Duration) -> Result<(), String> {
        tokio::time::sleep(self.0.delay).await;
        if self.0.failing.load(Ordering::SeqCst) {
            return Err("nft: the test says no".to_string());
        }
        if let Ok(mut calls) = self.0.calls.lock() {
            calls.push(SinkCall {
                entries,
                timeout,
                finished_at: Instant::now(),
            });
        }
        Ok(())
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    advanced_ms: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            advanced_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.advanced_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let this = self.clone();
        Arc::new(move || {
            this.start + Duration::from_millis(this.advanced_ms.load(Ordering::SeqCst))
        })
    }
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|error| panic!("test name {text}: {error}"))
}

/// A recursive query for `qname`/`qtype` with a random id, with an EDNS record if `edns`.
pub fn query_bytes(qname: &str, qtype: RecordType, edns: bool) -> (u16, Vec<u8>) {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(qname), qtype));
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(1232);
        message.set_edns(opt);
    }
    let bytes = message
        .to_vec()
        .unwrap_or_else(|error| panic!("encoding a test query: {error}"));
    (message.metadata.id, bytes)
}

pub fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes)
        .unwrap_or_else(|error| panic!("the stub's reply does not parse: {error}"))
}

/// Sends `request` to `server` over UDP and returns the first datagram back.
pub async fn exchange_udp(server: SocketAddr, request: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("client bind: {error}"));
    socket
        .send_to(request, server)
        .await
        .unwrap_or_else(|error| panic!("client send: {error}"));
    let mut buffer = vec![0; 65_535];
    let (length, _) = tokio::time::timeout(CLIENT_PATIENCE, socket.recv_from(&mut buffer))
        .await
        .unwrap_or_else(|_| panic!("no UDP reply from {server} within {CLIENT_PATIENCE:?}"))
        .unwrap_or_else(|error| panic!("client receive: {error}"));
    buffer.truncate(length);
    buffer
}

/// Asks `server` over UDP and checks the reply carries the query's id.
pub async fn ask_udp(server: SocketAddr, qname: &str, qtype: RecordType) -> Message {
    let (id, request) = query_bytes(qname, qtype, false);
    let reply = parse(&exchange_udp(server, &request).await);
    assert_eq!(
        reply.metadata.id, id,
        "the reply must carry the client's id"
    );
    reply
}

/// Sends each request on one TCP connection and reads a reply to each.
pub async fn ask_tcp_many(server: SocketAddr, requests: &[Vec<u8>]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server)
        .await
        .unwrap_or_else(|error| panic!("client connect: {error}"));
    let mut replies = Vec::new();
    for request in requests {
        let length = u16::try_from(request.len()).unwrap_or_else(|_| panic!("test query too long"));
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(request);
        stream
            .write_all(&framed)
            .await
            .unwrap_or_else(|error| panic!("client write: {error}"));
        let read = async {
            let length = stream.read_u16().await?;
            let mut reply = vec![0; usize::from(length)];
            stream.read_exact(&mut reply).await?;
            Ok::<_, std::io::Error>(reply)
        };
        let reply = tokio::time::timeout(CLIENT_PATIENCE, read)
            .await
            .unwrap_or_else(|_| panic!("no TCP reply within {CLIENT_PATIENCE:?}"))
            .unwrap_or_else(|error| panic!("client read: {error}"));
        replies.push(parse(&reply));
    }
    replies
}
