//! Answers kept for their lifetime, so that a repeated question costs neither an upstream round
//! trip nor an nft call. Bounded: when full, the entry closest to expiry goes first.
//!
//! The clock is a parameter, so the expiry rules are tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::answer::Answer;

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
    answer: Answer,
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
    pub(crate) fn fresh(&mut self, key: &CacheKey, ports: &[u16], now: Instant) -> Option<Answer> {
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
        let mut answer = entry.answer.clone();
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.authorities.iter_mut())
            .chain(answer.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(elapsed_s);
        }
        Some(answer)
    }

    /// Keeps `answer` for `lifetime` from `stored_at`; a zero lifetime keeps nothing.
    pub(crate) fn insert(
        &mut self,
        key: CacheKey,
        answer: Answer,
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
