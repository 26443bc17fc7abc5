//! Counters of what the stub did, updated lock-free on the hot path and read as one plain
//! struct by the status socket.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; only the stub writes them.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    queries: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    formerr: AtomicU64,
    dropped: AtomicU64,
    not_implemented: AtomicU64,
    servfail: AtomicU64,
    cache_hits: AtomicU64,
    upstream_failures: AtomicU64,
    allow_insertions: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Messages received on either transport, readable or not.
    pub queries: u64,
    /// Replies carrying the upstream's answer (NOERROR or NXDOMAIN), fresh or cached.
    pub answered: u64,
    /// Names outside the policy (and classes or types the stub does not serve).
    pub refused: u64,
    /// Queries answered FORMERR: a readable header but a body that is not one question.
    pub formerr: u64,
    /// Messages too short for a header, or responses sent to us: no reply at all.
    pub dropped: u64,
    /// Opcodes other than QUERY.
    pub not_implemented: u64,
    /// Replies SERVFAIL: no upstream, every upstream failed, or the firewall did not open.
    pub servfail: u64,
    /// Queries answered from the cache.
    pub cache_hits: u64,
    /// Upstream attempts that failed (timeout, socket error, bad or refusing answer).
    pub upstream_failures: u64,
    /// (address, port) elements the allow sink accepted.
    pub allow_insertions: u64,
}

/// The counter an event bumps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Queries,
    Answered,
    Refused,
    Formerr,
    Dropped,
    NotImplemented,
    Servfail,
    CacheHits,
    UpstreamFailures,
}

impl Stats {
    pub(crate) fn bump(&self, counter: Counter) {
        self.counter(counter).fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_allow_insertions(&self, count: u64) {
        self.allow_insertions.fetch_add(count, Ordering::Relaxed);
    }

    fn counter(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::Queries => &self.queries,
            Counter::Answered => &self.answered,
            Counter::Refused => &self.refused,
            Counter::Formerr => &self.formerr,
            Counter::Dropped => &self.dropped,
            Counter::NotImplemented => &self.not_implemented,
            Counter::Servfail => &self.servfail,
            Counter::CacheHits => &self.cache_hits,
            Counter::UpstreamFailures => &self.upstream_failures,
        }
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            queries: read(&self.queries),
            answered: read(&self.answered),
            refused: read(&self.refused),
            formerr: read(&self.formerr),
            dropped: read(&self.dropped),
            not_implemented: read(&self.not_implemented),
            servfail: read(&self.servfail),
            cache_hits: read(&self.cache_hits),
            upstream_failures: read(&self.upstream_failures),
            allow_insertions: read(&self.allow_insertions),
        }
    }
}
