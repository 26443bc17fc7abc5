//! A cached answer kept as the bytes of its reply, so that a cache hit is a copy and a few
//! patches instead of building and encoding a hickory `Message` (most of a hit's cost).
//!
//! The bytes are the reply to the question as first asked, with id 0, RD clear and no OPT
//! record. Serving them to a client sets its id and RD flag, lowers each TTL by the time spent
//! in the cache (the TTL fields' offsets are found once, when the entry is made), and appends
//! the stub's OPT record, which hickory also writes last. [`WireAnswer::reply`] is tested to
//! give the very bytes the `Message` path gives.

use hickory_proto::ProtoError;
use hickory_proto::op::Message;

use super::answer::Answer;
use super::query::{EDNS_PAYLOAD, Question};
use super::reply;

const HEADER_LEN: usize = 12;
/// Header byte 2's RD bit, and where ARCOUNT sits.
const RD_BIT: u8 = 0x01;
const ARCOUNT_AT: usize = 10;
/// Our OPT record (`query::our_edns`): root owner, type 41, class = payload size, zero extended
/// rcode, version and flags, no options.
const OPT_RECORD: [u8; 11] = {
    let [high, low] = EDNS_PAYLOAD.to_be_bytes();
    [0, 0, 41, high, low, 0, 0, 0, 0, 0, 0]
};

#[derive(Debug, Clone)]
pub(crate) struct WireAnswer {
    bytes: Vec<u8>,
    /// Where the question section ends (the question is the header's neighbour, from 12).
    question_end: usize,
    /// The offset of every record's TTL field.
    ttl_offsets: Vec<usize>,
}

impl WireAnswer {
    /// `answer` to `question`, encoded once for the cache.
    pub(crate) fn encode(question: &Question, answer: Answer) -> Result<Self, ProtoError> {
        let mut message = reply::answer(question, answer);
        message.metadata.id = 0;
        message.metadata.recursion_desired = false;
        message.edns = None;
        let bytes = message.to_vec()?;
        let (question_end, ttl_offsets) =
            layout(&bytes).ok_or(ProtoError::from("hickory wrote an unreadable reply"))?;
        Ok(Self {
            bytes,
            question_end,
            ttl_offsets,
        })
    }

    /// A copy with every TTL lowered by `elapsed_s`.
    pub(crate) fn aged(&self, elapsed_s: u32) -> Self {
        let mut aged = self.clone();
        for &at in &self.ttl_offsets {
            let ttl = read_u32(&self.bytes, at).saturating_sub(elapsed_s);
            aged.bytes[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
        aged
    }

    /// The reply to the client's `request` (read as `question`) within `limit` bytes. The fast
    /// path needs the client's question to be byte for byte the cached one: hickory compresses
    /// record names against it by exact bytes, so a question in other letter case (or one sent
    /// with a pointer) takes the `Message` path, as does a reply over the client's limit.
    pub(crate) fn reply(
        mut self,
        question: &Question,
        request: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, ProtoError> {
        let edns = question.client_payload.is_some();
        let length = self.bytes.len() + if edns { OPT_RECORD.len() } else { 0 };
        let same_question = request.get(HEADER_LEN..self.question_end)
            == self.bytes.get(HEADER_LEN..self.question_end);
        if !same_question || length > limit {
            return self.reply_by_message(question, limit);
        }
        self.bytes[..2].copy_from_slice(&question.id.to_be_bytes());
        if question.recursion_desired {
            self.bytes[2] |= RD_BIT;
        }
        if edns {
            let additionals =
                u16::from_be_bytes([self.bytes[ARCOUNT_AT], self.bytes[ARCOUNT_AT + 1]]);
            let Some(additionals) = additionals.checked_add(1) else {
                return self.reply_by_message(question, limit);
            };
            self.bytes[ARCOUNT_AT..ARCOUNT_AT + 2].copy_from_slice(&additionals.to_be_bytes());
            self.bytes.extend_from_slice(&OPT_RECORD);
        }
        Ok(self.bytes)
    }

    /// The general path: the bytes read back into a `Message`, answered as a fresh answer is.
    fn reply_by_message(self, question: &Question, limit: usize) -> Result<Vec<u8>, ProtoError> {
        let cached = Message::from_vec(&self.bytes)?;
        let answer = Answer {
            rcode: cached.metadata.response_code,
            answers: cached.answers,
            authorities: cached.authorities,
            additionals: cached.additionals,
        };
        reply::encode(&reply::answer(question, answer), limit)
    }

    #[cfg(test)]
    pub(crate) fn ttls(&self) -> Vec<u32> {
        self.ttl_offsets
            .iter()
            .map(|&at| read_u32(&self.bytes, at))
            .collect()
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The end of the question section and the offsets of the TTL fields in a message, or `None`
/// when it does not read.
fn layout(bytes: &[u8]) -> Option<(usize, Vec<usize>)> {
    let count = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let questions = count(4)?;
    let records = count(6)? + count(8)? + count(10)?;
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(bytes, at)? + 4;
    }
    let question_end = at;
    let mut ttl_offsets = Vec::with_capacity(records);
    for _ in 0..records {
        // Owner name, then type (2), class (2), TTL (4), RDLENGTH (2) and the data.
        let ttl_at = skip_name(bytes, at)? + 4;
        ttl_offsets.push(ttl_at);
        at = ttl_at + 6 + count(ttl_at + 4)?;
    }
    (at == bytes.len()).then_some((question_end, ttl_offsets))
}

/// The offset just past the name at `at`: labels up to the root label, or up to a pointer.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *bytes.get(at)?;
        match length & 0xC0 {
            0xC0 => return Some(at + 2),
            0 if length == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(length),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{Edns, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;
    use crate::dns::query::{Decision, decide};
    use crate::dns::{NamePolicy, Transport};

    struct Everything;

    impl NamePolicy for Everything {
        fn ports(&self, _: &str) -> Option<Vec<u16>> {
            Some(vec![443])
        }
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn request(qname: &str, id: u16, rd: bool, payload: Option<u16>) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = rd;
        message.add_query(Query::query(name(qname), RecordType::A));
        if let Some(payload) = payload {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            message.set_edns(edns);
        }
        message.to_vec().unwrap_or_else(|error| panic!("{error}"))
    }

    fn question(request: &[u8]) -> Question {
        match decide(request, &Everything) {
            Decision::Resolve(question) => question,
            other => panic!("{other:?}"),
        }
    }

    fn answers() -> Vec<Answer> {
        let a = |owner: &str, last: u8, ttl: u32| {
            let address = Ipv4Addr::new(192, 0, 2, last);
            Record::from_rdata(name(owner), ttl, RData::A(A(address)))
        };
        let soa = SOA::new(name("ns.test."), name("admin.test."), 1, 1, 1, 1, 30);
        vec![
            Answer {
                rcode: ResponseCode::NoError,
                answers: vec![a("q.test.", 1, 300), a("q.test.", 2, 200)],
                authorities: vec![],
                additionals: vec![],
            },
            Answer {
                rcode: ResponseCode::NoError,
                answers: vec![
                    Record::from_rdata(name("q.test."), 600, RData::CNAME(CNAME(name("c.x.")))),
                    a("c.x.", 3, 30),
                ],
                authorities: vec![],
                additionals: vec![],
            },
            Answer {
                rcode: ResponseCode::NXDomain,
                answers: vec![],
                authorities: vec![Record::from_rdata(name("test."), 60, RData::SOA(soa))],
                additionals: vec![],
            },
            Answer {
                rcode: ResponseCode::NoError,
                answers: (0..60).map(|last| a("q.test.", last, 60)).collect(),
                authorities: vec![],
                additionals: vec![],
            },
        ]
    }

    fn aged(answer: &Answer, elapsed_s: u32) -> Answer {
        let age = |records: &[Record]| -> Vec<Record> {
            records
                .iter()
                .cloned()
                .map(|mut record| {
                    record.ttl = record.ttl.saturating_sub(elapsed_s);
                    record
                })
                .collect()
        };
        Answer {
            rcode: answer.rcode,
            answers: age(&answer.answers),
            authorities: age(&answer.authorities),
            additionals: age(&answer.additionals),
        }
    }

    /// Whatever the client (id, RD, EDNS, letter case, size limit), a cached reply is byte for
    /// byte the reply the `Message` path gives for the same answer with its TTLs lowered.
    #[test]
    fn a_patched_reply_is_the_reply_the_message_path_encodes() {
        let first = question(&request("q.test.", 7, true, None));
        let clients = [
            request("q.test.", 0xbeef, true, None),
            request("q.test.", 1, false, None),
            request("q.test.", 2, true, Some(4096)),
            request("q.test.", 3, true, Some(512)),
            request("Q.Test.", 4, true, Some(1232)),
        ];
        for answer in answers() {
            let wire = WireAnswer::encode(&first, answer.clone());
            let wire = wire.unwrap_or_else(|error| panic!("{error}"));
            for elapsed_s in [0, 7, 250] {
                for client in &clients {
                    let question = question(client);
                    for transport in [Transport::Udp, Transport::Tcp] {
                        let limit = reply::size_limit(transport, question.client_payload);
                        let patched = wire.aged(elapsed_s).reply(&question, client, limit);
                        let expected = reply::answer(&question, aged(&answer, elapsed_s));
                        let expected = reply::encode(&expected, limit);
                        assert!(expected.is_ok(), "the Message path encodes");
                        assert_eq!(
                            patched.ok(),
                            expected.ok(),
                            "{:?} {question:?} {transport:?} after {elapsed_s} s",
                            answer.rcode
                        );
                    }
                }
            }
        }
    }
}
