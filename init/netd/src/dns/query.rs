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

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Name;

    use super::*;

    struct OnlyAllowed;

    impl NamePolicy for OnlyAllowed {
        fn ports(&self, name: &str) -> Option<Vec<u16>> {
            (name == "allowed.test").then(|| vec![8443, 443, 8443])
        }
    }

    fn query_of(query: Query, op_code: OpCode) -> Vec<u8> {
        let mut message = Message::new(0x1234, MessageType::Query, op_code);
        message.add_query(query);
        message.to_vec().unwrap_or_else(|error| panic!("{error}"))
    }

    fn allowed(qtype: RecordType) -> Query {
        let name = Name::from_ascii("Allowed.Test.").unwrap_or_else(|error| panic!("{error}"));
        Query::query(name, qtype)
    }

    fn rejection(decision: Decision) -> (Rejection, ResponseCode, u16) {
        match decision {
            Decision::Reply { message, reason } => {
                (reason, message.metadata.response_code, message.metadata.id)
            }
            other => panic!("expected an immediate reply, got {other:?}"),
        }
    }

    #[test]
    fn messages_without_a_header_and_responses_are_dropped() {
        assert!(matches!(
            decide(&[0; 11], &OnlyAllowed),
            Decision::Drop(DropReason::NoHeader)
        ));
        let mut response = query_of(allowed(RecordType::A), OpCode::Query);
        response[2] |= 0x80;
        assert!(matches!(
            decide(&response, &OnlyAllowed),
            Decision::Drop(DropReason::NotAQuery)
        ));
    }

    #[test]
    fn a_readable_header_over_a_broken_body_gets_formerr_with_its_id() {
        let mut request = query_of(allowed(RecordType::A), OpCode::Query);
        request.truncate(request.len() - 3);
        let (reason, rcode, id) = rejection(decide(&request, &OnlyAllowed));
        assert_eq!(
            (reason, rcode, id),
            (Rejection::Malformed, ResponseCode::FormErr, 0x1234)
        );
    }

    #[test]
    fn a_query_without_a_question_gets_formerr() {
        let request = Message::new(7, MessageType::Query, OpCode::Query).to_vec();
        let request = request.unwrap_or_else(|error| panic!("{error}"));
        let (reason, rcode, _) = rejection(decide(&request, &OnlyAllowed));
        assert_eq!(
            (reason, rcode),
            (Rejection::NotOneQuestion, ResponseCode::FormErr)
        );
    }

    #[test]
    fn opcodes_other_than_query_get_notimp() {
        let request = query_of(allowed(RecordType::A), OpCode::Notify);
        let (reason, rcode, _) = rejection(decide(&request, &OnlyAllowed));
        assert_eq!(
            (reason, rcode),
            (Rejection::NotAQueryOpcode, ResponseCode::NotImp)
        );
    }

    #[test]
    fn other_classes_and_zone_transfers_are_refused_even_for_an_allowed_name() {
        let mut chaos = allowed(RecordType::TXT);
        chaos.set_query_class(DNSClass::CH);
        for query in [chaos, allowed(RecordType::AXFR), allowed(RecordType::IXFR)] {
            let request = query_of(query.clone(), OpCode::Query);
            let (reason, rcode, _) = rejection(decide(&request, &OnlyAllowed));
            assert_eq!(
                (reason, rcode),
                (Rejection::Refused, ResponseCode::Refused),
                "{query}"
            );
        }
    }

    #[test]
    fn an_allowed_name_of_any_type_is_resolved_with_sorted_distinct_ports() {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::HTTPS,
        ] {
            let request = query_of(allowed(qtype), OpCode::Query);
            let Decision::Resolve(question) = decide(&request, &OnlyAllowed) else {
                panic!("{qtype} for an allowed name was not resolved");
            };
            assert_eq!(question.ports, vec![443, 8443]);
            assert_eq!(question.id, 0x1234);
            assert_eq!(
                question.query.name().to_ascii(),
                "Allowed.Test.",
                "kept as asked"
            );
        }
    }
}
