//! Answers kept for their lifetime, so that a repeated question costs neither an upstream round
//! trip nor an nft call. Bounded: when full, the entry closest to expiry goes first.
//!
//! The clock is a parameter, so the expiry rules are tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::wire::WireAnswer;

/// Entries kept at most, by default.
pub const CACHE_CAPACITY: usize = 4096;

/// Which question an answer answers. `Name` compares and hashes without regard to letter case,
/// so `WWW.example.` and `www.example.` share an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    name: Name,
    record_type: RecordType,
    class: DNSClass,
}

impl CacheKey {
    pub(crate) fn of(query: &Query) -> Self {
        Self {
            name: query.name().clone(),
            record_type: query.query_type(),
            class: query.query_class(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    answer: WireAnswer,
    /// The ports the answer's addresses were opened for, sorted.
    opened_ports: Vec<u16>,
    stored_at: Instant,
    /// Its key in `Cache::by_expiry`.
    expiry: (Instant, u64),
}

#[derive(Debug)]
pub(crate) struct Cache {
    entries: HashMap<CacheKey, Entry>,
    /// Expiry instant (then insertion order, to keep keys unique) to cache key.
    by_expiry: BTreeMap<(Instant, u64), CacheKey>,
    capacity: usize,
    insertions: u64,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            capacity,
            insertions: 0,
        }
    }

    /// The answer stored under `key`, with every TTL reduced by the whole seconds it has spent
    /// here, if it has not expired and its addresses were opened for all of `ports` (the policy
    /// may have added ports since).
    pub(crate) fn fresh(
        &mut self,
        key: &CacheKey,
        ports: &[u16],
        now: Instant,
    ) -> Option<WireAnswer> {
        let entry = self.entries.get(key)?;
        if now >= entry.expiry.0 {
            self.remove(key);
            return None;
        }
        if !ports
            .iter()
            .all(|port| entry.opened_ports.binary_search(port).is_ok())
        {
            return None;
        }
        let elapsed_s =
            u32::try_from(now.duration_since(entry.stored_at).as_secs()).unwrap_or(u32::MAX);
        Some(entry.answer.aged(elapsed_s))
    }

    /// Keeps `answer` for `lifetime` from `stored_at`; a zero lifetime keeps nothing.
    pub(crate) fn insert(
        &mut self,
        key: CacheKey,
        answer: WireAnswer,
        opened_ports: Vec<u16>,
        stored_at: Instant,
        lifetime: Duration,
    ) {
        if lifetime.is_zero() || self.capacity == 0 {
            return;
        }
        self.remove(&key);
        if self.entries.len() >= self.capacity {
            self.evict_expired(stored_at);
        }
        if self.entries.len() >= self.capacity
            && let Some((_, soonest)) = self.by_expiry.pop_first()
        {
            self.entries.remove(&soonest);
        }
        self.insertions += 1;
        let expiry = (stored_at + lifetime, self.insertions);
        self.by_expiry.insert(expiry, key.clone());
        self.entries.insert(
            key,
            Entry {
                answer,
                opened_ports,
                stored_at,
                expiry,
            },
        );
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.by_expiry.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_expiry.remove(&entry.expiry);
        }
    }

    fn evict_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::ResponseCode;

    use crate::dns::answer::Answer;
    use crate::dns::query::Question;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    use super::*;

    fn key(text: &str) -> CacheKey {
        let name = Name::from_ascii(text).unwrap_or_else(|error| panic!("{error}"));
        CacheKey::of(&Query::query(name, RecordType::A))
    }

    fn answer(ttl: u32) -> WireAnswer {
        let name = Name::from_ascii("x.test.").unwrap_or_else(|error| panic!("{error}"));
        let query = Query::query(name.clone(), RecordType::A);
        let question = Question {
            id: 1,
            key: CacheKey::of(&query),
            query,
            recursion_desired: true,
            client_payload: None,
            ports: vec![443],
        };
        let answer = Answer {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name,
                ttl,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            )],
            authorities: vec![],
            additionals: vec![],
        };
        WireAnswer::encode(&question, answer).unwrap_or_else(|error| panic!("{error}"))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ttls_count_down_in_whole_seconds_until_expiry() {
        let start = Instant::now();
        let mut cache = Cache::new(4);
        cache.insert(key("x.test."), answer(100), vec![443], start, secs(100));
        let hit = cache.fresh(
            &key("X.TEST."),
            &[443],
            start + Duration::from_millis(2_999),
        );
        assert_eq!(hit.map(|answer| answer.ttls()[0]), Some(98));
        assert!(
            cache
                .fresh(&key("x.test."), &[443], start + secs(100))
                .is_none()
        );
        assert_eq!(cache.len(), 0, "an expired entry is removed when found");
    }

    #[test]
    fn an_answer_opened_for_fewer_ports_than_asked_is_not_served() {
        let start = Instant::now();
        let mut cache = Cache::new(4);
        cache.insert(key("x.test."), answer(100), vec![80, 443], start, secs(100));
        assert!(cache.fresh(&key("x.test."), &[443], start).is_some());
        assert!(cache.fresh(&key("x.test."), &[22, 443], start).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_one_closest_to_expiry() {
        let start = Instant::now();
        let mut cache = Cache::new(2);
        cache.insert(key("long.test."), answer(300), vec![], start, secs(300));
        cache.insert(key("short.test."), answer(10), vec![], start, secs(10));
        cache.insert(key("new.test."), answer(200), vec![], start, secs(200));
        assert!(cache.fresh(&key("short.test."), &[], start).is_none());
        assert!(cache.fresh(&key("long.test."), &[], start).is_some());
        assert!(cache.fresh(&key("new.test."), &[], start).is_some());

        cache.insert(
            key("later.test."),
            answer(50),
            vec![],
            start + secs(250),
            secs(50),
        );
        assert!(
            cache
                .fresh(&key("new.test."), &[], start + secs(250))
                .is_none(),
            "expired first"
        );
        assert!(
            cache
                .fresh(&key("long.test."), &[], start + secs(250))
                .is_some()
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn replacing_an_entry_keeps_one_copy_and_a_zero_lifetime_keeps_none() {
        let start = Instant::now();
        let mut cache = Cache::new(4);
        cache.insert(key("x.test."), answer(10), vec![], start, secs(10));
        cache.insert(key("x.test."), answer(50), vec![], start, secs(50));
        assert_eq!(cache.len(), 1);
        assert!(
            cache
                .fresh(&key("x.test."), &[], start + secs(20))
                .is_some()
        );
        cache.insert(key("zero.test."), answer(0), vec![], start, Duration::ZERO);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.by_expiry.len(),
            1,
            "the expiry index follows the entries"
        );
    }
}
