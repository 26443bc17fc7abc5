//! Replies to clients: an answer or SERVFAIL for an accepted question, and the bytes that fit
//! the transport (a UDP client that cannot take the whole answer gets it truncated, and asks
//! again over TCP).

use hickory_proto::op::{Message, OpCode, ResponseCode};

use super::answer::Answer;
use super::query::{Question, error_reply, our_edns};

/// Where a query came from, which bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// RFC 1035's UDP limit, for clients that sent no EDNS payload size.
const UDP_CLASSIC_LIMIT: usize = 512;

pub(crate) fn answer(question: &Question, answer: Answer) -> Message {
    let mut message = Message::response(question.id, OpCode::Query);
    message.metadata.recursion_desired = question.recursion_desired;
    message.metadata.recursion_available = true;
    message.metadata.response_code = answer.rcode;
    message.add_query(question.query.clone());
    message.answers = answer.answers;
    message.authorities = answer.authorities;
    message.additionals = answer.additionals;
    if question.client_payload.is_some() {
        message.set_edns(our_edns());
    }
    message
}

pub(crate) fn servfail(question: &Question) -> Message {
    let mut message = error_reply(
        question.id,
        OpCode::Query,
        question.recursion_desired,
        question.client_payload,
        ResponseCode::ServFail,
    );
    message.add_query(question.query.clone());
    message
}

/// The largest reply `transport` takes from a client that advertised `client_payload`.
pub(crate) fn size_limit(transport: Transport, client_payload: Option<u16>) -> usize {
    match transport {
        Transport::Udp => client_payload.map_or(UDP_CLASSIC_LIMIT, |payload| {
            usize::from(payload).max(UDP_CLASSIC_LIMIT)
        }),
        Transport::Tcp => usize::from(u16::MAX),
    }
}

/// `message` as bytes of at most `limit`: whole, or with its records cut and TC set.
pub(crate) fn encode(
    message: &Message,
    limit: usize,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let bytes = message.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    let mut truncated = Message::response(message.metadata.id, message.metadata.op_code);
    truncated.metadata = message.metadata;
    truncated.metadata.truncation = true;
    truncated.queries = message.queries.clone();
    truncated.edns = message.edns.clone();
    truncated.to_vec()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    #[test]
    fn a_reply_over_the_clients_limit_goes_out_truncated_with_its_question() {
        let name = Name::from_ascii("big.test.").unwrap_or_else(|error| panic!("{error}"));
        let mut message = Message::response(9, OpCode::Query);
        message.add_query(Query::query(name.clone(), RecordType::A));
        for last in 0..60 {
            let address = Ipv4Addr::new(192, 0, 2, last);
            message.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(address))));
        }
        let whole = encode(&message, size_limit(Transport::Tcp, None));
        let whole = whole.unwrap_or_else(|error| panic!("{error}"));
        assert!(whole.len() > 512);
        let cut = encode(&message, size_limit(Transport::Udp, None));
        let cut = Message::from_vec(&cut.unwrap_or_else(|error| panic!("{error}")));
        let cut = cut.unwrap_or_else(|error| panic!("{error}"));
        assert!(cut.metadata.truncation);
        assert!(cut.answers.is_empty());
        assert_eq!((cut.metadata.id, cut.queries.len()), (9, 1));
        let edns_limit = encode(&message, size_limit(Transport::Udp, Some(4096)));
        assert_eq!(
            edns_limit.ok(),
            Some(whole),
            "an EDNS client takes the whole answer"
        );
    }
}
