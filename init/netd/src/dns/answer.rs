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
