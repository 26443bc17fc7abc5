//! The first look at a client's message: read it, and decide whether to drop it, reply at once
//! (FORMERR, NOTIMP, REFUSED) or resolve it. No I/O and no clock, so it is fuzzed and unit
//! tested as a pure function of the bytes and the policy.

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::cache::CacheKey;
use super::policy::{NamePolicy, policy_name};

/// The UDP payload size the stub advertises and asks upstreams for: the DNS flag day 2020
/// value, which fits an Ethernet MTU without IP fragmentation.
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// What to do with one message from a client.
#[derive(Debug)]
pub enum Decision {
    /// Send nothing back.
    Drop(DropReason),
    /// Send this reply now, without asking anyone.
    Reply { message: Message, reason: Rejection },
    /// A question about an allowlisted name: answer it from the cache or an upstream.
    Resolve(Question),
}

/// Why a message gets no reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than a DNS header: there is no id to reply to.
    NoHeader,
    /// A response, not a query; replying could start a loop between two servers.
    NotAQuery,
}

/// Why a query is answered at once with an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// FORMERR: the header reads but the rest is not a DNS message.
    Malformed,
    /// FORMERR: zero or several questions; the stub answers exactly one.
    NotOneQuestion,
    /// NOTIMP: an opcode other than QUERY.
    NotAQueryOpcode,
    /// REFUSED: a name outside the policy, a class other than IN, or a zone transfer.
    Refused,
}

/// An accepted question and what the reply needs to remember about the client's message.
#[derive(Debug, Clone)]
pub struct Question {
    /// The client's id, echoed in the reply.
    pub id: u16,
    /// The question exactly as the client asked it (its letter case included).
    pub query: Query,
    pub recursion_desired: bool,
    /// The client's EDNS payload size, when it sent an OPT record.
    pub client_payload: Option<u16>,
    /// Where its answer lives in the cache.
    pub key: CacheKey,
    /// The TCP ports the policy opens for the name's addresses, sorted, without duplicates.
    pub ports: Vec<u16>,
}

/// Reads `bytes` as a client's query and decides its fate under `policy`.
pub fn decide(bytes: &[u8], policy: &impl NamePolicy) -> Decision {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Decision::Drop(DropReason::NoHeader);
    };
    if header.metadata.message_type != MessageType::Query {
        return Decision::Drop(DropReason::NotAQuery);
    }
    let id = header.metadata.id;
    let op_code = header.metadata.op_code;
    let recursion_desired = header.metadata.recursion_desired;
    let Ok(message) = Message::from_vec(bytes) else {
        return reject(id, op_code, recursion_desired, None, Rejection::Malformed);
    };
    let client_payload = message.edns.as_ref().map(Edns::max_payload);
    if op_code != OpCode::Query {
        return reject(
            id,
            op_code,
            recursion_desired,
            client_payload,
            Rejection::NotAQueryOpcode,
        );
    }
    let query = match <[Query; 1]>::try_from(message.queries) {
        Ok([query]) => query,
        Err(_) => {
            return reject(
                id,
                op_code,
                recursion_desired,
                client_payload,
                Rejection::NotOneQuestion,
            );
        }
    };
    let ports = served(&query)
        .then(|| policy_name(query.name()))
        .flatten()
        .and_then(|name| policy.ports(&name));
    let Some(mut ports) = ports else {
        let mut message = error_reply(
            id,
            op_code,
            recursion_desired,
            client_payload,
            ResponseCode::Refused,
        );
        message.add_query(query);
        return Decision::Reply {
            message,
            reason: Rejection::Refused,
        };
    };
    ports.sort_unstable();
    ports.dedup();
    Decision::Resolve(Question {
        id,
        key: CacheKey::of(&query),
        query,
        recursion_desired,
        client_payload,
        ports,
    })
}

/// Whether the stub serves this class and type at all: the Internet class only, and no zone
/// transfers (they span several messages and are no service's business).
fn served(query: &Query) -> bool {
    query.query_class() == DNSClass::IN
        && !matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
}

fn reject(
    id: u16,
    op_code: OpCode,
    recursion_desired: bool,
    client_payload: Option<u16>,
    reason: Rejection,
) -> Decision {
    let rcode = match reason {
        Rejection::Malformed | Rejection::NotOneQuestion => ResponseCode::FormErr,
        Rejection::NotAQueryOpcode => ResponseCode::NotImp,
        Rejection::Refused => ResponseCode::Refused,
    };
    let message = error_reply(id, op_code, recursion_desired, client_payload, rcode);
    Decision::Reply { message, reason }
}

/// A reply with no records: the client's id, opcode and RD flag, our RA flag, and an OPT record
/// when the client sent one (RFC 6891 section 6.1.1).
pub(crate) fn error_reply(
    id: u16,
    op_code: OpCode,
    recursion_desired: bool,
    client_payload: Option<u16>,
    rcode: ResponseCode,
) -> Message {
    let mut message = Message::error_msg(id, op_code, rcode);
    message.metadata.recursion_desired = recursion_desired;
    message.metadata.recursion_available = true;
    if client_payload.is_some() {
        message.set_edns(our_edns());
    }
    message
}

pub(crate) fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns
}
