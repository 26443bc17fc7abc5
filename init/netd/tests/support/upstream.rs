//! A fake upstream resolver on loopback, UDP and TCP on one port: it answers from a small zone
//! (A, AAAA and CNAME records with TTLs, plus an optional wildcard A under one suffix), counts
//! the queries it gets, and can be told to stay silent or to truncate its UDP answers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::name;

/// The negative-answer TTL the fake's SOA carries (both its TTL and its MINIMUM).
pub const NEGATIVE_TTL: u32 = 120;

#[derive(Debug, Default, Clone)]
pub struct Zone {
    records: Vec<Record>,
    /// Every name under the suffix has this A record with this TTL.
    wildcard_a: Option<(Name, Ipv4Addr, u32)>,
}

impl Zone {
    pub fn a(mut self, owner: &str, address: Ipv4Addr, ttl: u32) -> Self {
        self.records
            .push(Record::from_rdata(name(owner), ttl, RData::A(A(address))));
        self
    }

    pub fn aaaa(mut self, owner: &str, address: Ipv6Addr, ttl: u32) -> Self {
        self.records.push(Record::from_rdata(
            name(owner),
            ttl,
            RData::AAAA(AAAA(address)),
        ));
        self
    }

    pub fn cname(mut self, owner: &str, target: &str, ttl: u32) -> Self {
        self.records.push(Record::from_rdata(
            name(owner),
            ttl,
            RData::CNAME(CNAME(name(target))),
        ));
        self
    }

    pub fn wildcard_a(mut self, suffix: &str, address: Ipv4Addr, ttl: u32) -> Self {
        self.wildcard_a = Some((name(suffix), address, ttl));
        self
    }

    /// The answer records for `qname`/`qtype`, following CNAMEs; `None` for an unknown name.
    fn lookup(&self, qname: &Name, qtype: RecordType) -> Option<Vec<Record>> {
        let mut current = qname.clone();
        let mut answers = Vec::new();
        for _ in 0..8 {
            let cname = self
                .records
                .iter()
                .find(|record| record.name == current && record.record_type() == RecordType::CNAME);
            match cname {
                Some(record) if qtype != RecordType::CNAME => {
                    answers.push(record.clone());
                    if let RData::CNAME(target) = &record.data {
                        current = target.0.clone();
                    }
                }
                _ => break,
            }
        }
        let owned: Vec<&Record> = self
            .records
            .iter()
            .filter(|record| record.name == current)
            .collect();
        answers.extend(
            owned
                .iter()
                .filter(|record| record.record_type() == qtype)
                .map(|record| (*record).clone()),
        );
        if let Some((suffix, address, ttl)) = &self.wildcard_a
            && owned.is_empty()
            && suffix.zone_of(&current)
            && current != *suffix
        {
            if qtype == RecordType::A {
                answers.push(Record::from_rdata(
                    current.clone(),
                    *ttl,
                    RData::A(A(*address)),
                ));
            }
            return Some(answers);
        }
        (!owned.is_empty() || !answers.is_empty()).then_some(answers)
    }
}

#[derive(Debug, Default)]
struct Knobs {
    silent: AtomicBool,
    truncate_udp: AtomicBool,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
}

/// A running fake; its tasks live on the runtime that started it.
#[derive(Debug, Clone)]
pub struct FakeUpstream {
    pub address: SocketAddr,
    knobs: Arc<Knobs>,
}

impl FakeUpstream {
    pub async fn start(zone: Zone) -> Self {
        let (udp, tcp) = bind_udp_and_tcp_on_one_port().await;
        let address = udp
            .local_addr()
            .unwrap_or_else(|error| panic!("fake upstream address: {error}"));
        let knobs = Arc::new(Knobs::default());
        let zone = Arc::new(zone);
        tokio::spawn(serve_udp(udp, Arc::clone(&zone), Arc::clone(&knobs)));
        tokio::spawn(serve_tcp(tcp, zone, Arc::clone(&knobs)));
        Self { address, knobs }
    }

    pub fn set_silent(&self, silent: bool) {
        self.knobs.silent.store(silent, Ordering::SeqCst);
    }

    pub fn set_truncate_udp(&self, truncate: bool) {
        self.knobs.truncate_udp.store(truncate, Ordering::SeqCst);
    }

    pub fn udp_queries(&self) -> usize {
        self.knobs.udp_queries.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.knobs.tcp_queries.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> usize {
        self.udp_queries() + self.tcp_queries()
    }
}

async fn bind_udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("fake upstream UDP bind: {error}"));
        let Ok(address) = udp.local_addr() else {
            continue;
        };
        if let Ok(tcp) = TcpListener::bind(address).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP in 20 tries");
}

/// The fake's reply to `request`, or `None` for bytes it cannot read.
fn respond(zone: &Zone, request: &[u8], truncate: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    let query = request.queries.first()?.clone();
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(query.clone());
    if truncate {
        reply.metadata.truncation = true;
        return reply.to_vec().ok();
    }
    match zone.lookup(query.name(), query.query_type()) {
        Some(answers) if !answers.is_empty() => {
            reply.answers = answers;
        }
        found => {
            if found.is_none() {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            let soa = SOA::new(
                name("ns.test."),
                name("admin.test."),
                1,
                3600,
                600,
                86_400,
                NEGATIVE_TTL,
            );
            reply.add_authority(Record::from_rdata(
                name("test."),
                NEGATIVE_TTL,
                RData::SOA(soa),
            ));
        }
    }
    reply.to_vec().ok()
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Zone>, knobs: Arc<Knobs>) {
    let mut buffer = vec![0; 65_535];
    loop {
        let Ok((length, client)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        knobs.udp_queries.fetch_add(1, Ordering::SeqCst);
        if knobs.silent.load(Ordering::SeqCst) {
            continue;
        }
        let truncate = knobs.truncate_udp.load(Ordering::SeqCst);
        if let Some(reply) = buffer
            .get(..length)
            .and_then(|request| respond(&zone, request, truncate))
        {
            let _ = socket.send_to(&reply, client).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Zone>, knobs: Arc<Knobs>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(
            stream,
            Arc::clone(&zone),
            Arc::clone(&knobs),
        ));
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, zone: Arc<Zone>, knobs: Arc<Knobs>) {
    loop {
        let Ok(length) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0; usize::from(length)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        knobs.tcp_queries.fetch_add(1, Ordering::SeqCst);
        if knobs.silent.load(Ordering::SeqCst) {
            continue;
        }
        let Some(reply) = respond(&zone, &request, false) else {
            return;
        };
        let Ok(length) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
