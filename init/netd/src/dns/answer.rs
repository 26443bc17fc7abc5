//! What the stub takes from an upstream's response: the records that answer the question asked
//! (the CNAME chain from the queried name and what its names own), the addresses to open, and
//! how long the answer may be kept and believed.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record};

/// The bounds on an allow-set element's timeout, in seconds: short TTLs would have the set churn
/// under a busy client, long ones keep a moved service's old address open for too long.
const ALLOW_TIMEOUT_MIN_S: u32 = 60;
const ALLOW_TIMEOUT_MAX_S: u32 = 3600;
/// The longest a positive answer is kept, in seconds.
const POSITIVE_LIFETIME_MAX_S: u32 = 3600;
/// Negative answers: at most this long, and this long when the upstream sent no SOA.
const NEGATIVE_LIFETIME_MAX_S: u32 = 300;
const NEGATIVE_LIFETIME_DEFAULT_S: u32 = 60;
/// CNAME hops followed from the queried name; real chains are a handful long.
const CHAIN_HOPS_MAX: usize = 16;

/// An answer as the stub keeps it and serves it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// An upstream's response read for the stub.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    /// TTLs already capped at `lifetime`.
    pub answer: Answer,
    /// The A and AAAA addresses of the queried name, through its CNAME chain, without duplicates.
    pub addresses: Vec<IpAddr>,
    /// The allow-set element timeout for `addresses`; `None` when there are none.
    pub allow_timeout: Option<Duration>,
    /// How long the answer may be served from the cache, and the most any record's TTL says.
    pub lifetime: Duration,
}

/// Reads an upstream response to a question about `queried`.
///
/// Answer records off the CNAME chain from `queried` are dropped: an upstream may add records
/// for other names, and a client handed an address the stub did not open would fail to connect,
/// while opening it would let any upstream widen the allowlist.
///
/// The cache relies on `lifetime <= allow_timeout`: a cache hit inserts nothing, so an answer
/// must never outlive the set elements its addresses were given. `lifetime` is at most the
/// smallest answer TTL and at most 3600, while the timeout is the smallest address TTL clamped
/// to 60..=3600, which is never smaller; the final `min` keeps it true for odd responses too
/// (addresses with NXDOMAIN). Record TTLs are capped at `lifetime`, so no client is told to
/// keep an address longer than it stays open.
pub(crate) fn read_response(response: Message, queried: &Name) -> Resolved {
    let chain = cname_chain(&response.answers, queried);
    let answers: Vec<Record> = response
        .answers
        .into_iter()
        .filter(|record| chain.contains(&record.name))
        .collect();
    let mut addresses = Vec::new();
    let mut address_ttl_min: Option<u32> = None;
    for record in &answers {
        let address = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            _ => continue,
        };
        if !addresses.contains(&address) {
            addresses.push(address);
        }
        address_ttl_min = Some(address_ttl_min.map_or(record.ttl, |ttl| ttl.min(record.ttl)));
    }
    let allow_timeout_s =
        address_ttl_min.map(|ttl| ttl.clamp(ALLOW_TIMEOUT_MIN_S, ALLOW_TIMEOUT_MAX_S));
    let rcode = response.metadata.response_code;
    let mut lifetime_s = if rcode == ResponseCode::NXDomain || answers.is_empty() {
        negative_lifetime_s(&response.authorities)
    } else {
        answers
            .iter()
            .map(|record| record.ttl)
            .min()
            .unwrap_or(0)
            .min(POSITIVE_LIFETIME_MAX_S)
    };
    if let Some(timeout_s) = allow_timeout_s {
        lifetime_s = lifetime_s.min(timeout_s);
    }
    let cap = |records: Vec<Record>| -> Vec<Record> {
        records
            .into_iter()
            .map(|mut record| {
                record.ttl = record.ttl.min(lifetime_s);
                record
            })
            .collect()
    };
    Resolved {
        answer: Answer {
            rcode,
            answers: cap(answers),
            authorities: cap(response.authorities),
            additionals: cap(response.additionals),
        },
        addresses,
        allow_timeout: allow_timeout_s.map(|s| Duration::from_secs(u64::from(s))),
        lifetime: Duration::from_secs(u64::from(lifetime_s)),
    }
}

/// `queried` and every name its CNAME records lead to, in order, loops cut.
fn cname_chain(answers: &[Record], queried: &Name) -> Vec<Name> {
    let mut chain = vec![queried.clone()];
    for _ in 0..CHAIN_HOPS_MAX {
        let Some(current) = chain.last() else { break };
        let target = answers.iter().find_map(|record| match &record.data {
            RData::CNAME(cname) if record.name == *current => Some(cname.0.clone()),
            _ => None,
        });
        match target {
            Some(target) if !chain.contains(&target) => chain.push(target),
            _ => break,
        }
    }
    chain
}

/// RFC 2308 section 5: a negative answer lives for the smaller of the SOA record's TTL and its
/// MINIMUM field.
fn negative_lifetime_s(authorities: &[Record]) -> u32 {
    authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(NEGATIVE_LIFETIME_DEFAULT_S)
        .min(NEGATIVE_LIFETIME_MAX_S)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn a(owner: &str, last: u8, ttl: u32) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        )
    }

    fn cname(owner: &str, target: &str, ttl: u32) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let soa = SOA::new(name("ns.test."), name("admin.test."), 1, 1, 1, 1, minimum);
        Record::from_rdata(name("test."), ttl, RData::SOA(soa))
    }

    fn response(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.response_code = rcode;
        message.answers = answers;
        message.authorities = authorities;
        message
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn records_off_the_cname_chain_are_neither_opened_nor_passed_on() {
        let answers = vec![
            cname("www.allowed.test.", "cdn.other.test.", 300),
            a("cdn.other.test.", 1, 300),
            a("evil.test.", 66, 300),
            cname("unrelated.test.", "cdn.other.test.", 300),
        ];
        let resolved = read_response(
            response(ResponseCode::NoError, answers, vec![]),
            &name("WWW.allowed.test."),
        );
        assert_eq!(resolved.addresses, vec![v4(1)]);
        assert_eq!(resolved.answer.answers.len(), 2);
    }

    #[test]
    fn a_cname_loop_ends_and_keeps_its_records() {
        let answers = vec![
            cname("a.test.", "b.test.", 300),
            cname("b.test.", "a.test.", 300),
        ];
        let resolved = read_response(
            response(ResponseCode::NoError, answers, vec![]),
            &name("a.test."),
        );
        assert!(resolved.addresses.is_empty());
        assert_eq!(resolved.allow_timeout, None);
        assert_eq!(resolved.answer.answers.len(), 2);
    }

    #[test]
    fn negative_answers_live_for_the_smaller_soa_ttl_or_minimum_capped_at_300_s() {
        for (authorities, expected_s) in [
            (vec![soa(120, 30)], 30),
            (vec![soa(20, 900)], 20),
            (vec![soa(9000, 9000)], 300),
            (vec![], 60),
        ] {
            let resolved = read_response(
                response(ResponseCode::NXDomain, vec![], authorities),
                &name("x.test."),
            );
            assert_eq!(resolved.lifetime, Duration::from_secs(expected_s));
            assert!(
                resolved
                    .answer
                    .authorities
                    .iter()
                    .all(|record| u64::from(record.ttl) <= expected_s)
            );
        }
    }

    /// The cache's promise (a hit needs no insertion) holds for any TTLs and either rcode.
    #[test]
    fn no_answer_is_kept_longer_than_its_addresses_stay_open() {
        let ttls = [
            0,
            1,
            30,
            59,
            60,
            61,
            299,
            300,
            3599,
            3600,
            3601,
            86_400,
            u32::MAX,
        ];
        for rcode in [ResponseCode::NoError, ResponseCode::NXDomain] {
            for &cname_ttl in &ttls {
                for &address_ttl in &ttls {
                    let answers = vec![
                        cname("q.test.", "t.test.", cname_ttl),
                        a("t.test.", 1, address_ttl),
                        a("t.test.", 2, address_ttl.saturating_add(5)),
                    ];
                    let resolved = read_response(
                        response(rcode, answers, vec![soa(300, 300)]),
                        &name("q.test."),
                    );
                    let Some(timeout) = resolved.allow_timeout else {
                        panic!("addresses without a timeout");
                    };
                    let expected_s = address_ttl.clamp(60, 3600);
                    assert_eq!(timeout, Duration::from_secs(u64::from(expected_s)));
                    assert!(
                        resolved.lifetime <= timeout,
                        "{rcode} {cname_ttl} {address_ttl}"
                    );
                    assert!(
                        resolved
                            .answer
                            .answers
                            .iter()
                            .all(|record| u64::from(record.ttl) <= resolved.lifetime.as_secs())
                    );
                }
            }
        }
    }
}
