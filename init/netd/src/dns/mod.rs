//! The DNS stub: the box's only resolver, on 127.0.0.53 port 53 over UDP and TCP.
//!
//! Services reach the network only at addresses in the firewall's allow sets, and only this stub
//! fills them: a name the policy allows is forwarded upstream, its addresses are opened for the
//! policy's ports, and only then is the answer sent. Every other name is REFUSED.
//!
//! netd binds the sockets, implements [`NamePolicy`] and [`AllowSink`], and runs [`serve`].

mod answer;
mod cache;
mod policy;
mod query;
mod reply;
mod resolve;
mod server;
mod stats;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use cache::{CACHE_CAPACITY, CacheKey};
pub use policy::{AllowSink, NamePolicy};
pub use query::{Decision, DropReason, Question, Rejection, decide};
pub use reply::Transport;
pub use server::{TCP_CONNECTIONS_MAX, TCP_IDLE_TIMEOUT, serve};
pub use stats::StatsSnapshot;
pub use upstream::UPSTREAM_TIMEOUT;

use cache::Cache;
use stats::Stats;

/// Where the stub reads the time: `Instant::now` in netd, a hand-moved clock in tests.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The stub's state, shared by every query in flight.
pub struct Stub<P, S> {
    /// Swapped whole on a config reload; each query reads it once.
    policy: RwLock<Arc<P>>,
    sink: S,
    upstreams: watch::Receiver<Vec<SocketAddr>>,
    upstream_timeout: Duration,
    cache: Mutex<Cache>,
    clock: Clock,
    stats: Stats,
}

impl<P: NamePolicy, S: AllowSink> Stub<P, S> {
    /// A stub with an empty cache of [`CACHE_CAPACITY`] entries, the real clock and
    /// [`UPSTREAM_TIMEOUT`]. `upstreams` follows the DHCP lease; an empty list makes every
    /// allowed query SERVFAIL.
    pub fn new(policy: Arc<P>, sink: S, upstreams: watch::Receiver<Vec<SocketAddr>>) -> Self {
        Self {
            policy: RwLock::new(policy),
            sink,
            upstreams,
            upstream_timeout: UPSTREAM_TIMEOUT,
            cache: Mutex::new(Cache::new(CACHE_CAPACITY)),
            clock: Arc::new(Instant::now),
            stats: Stats::default(),
        }
    }

    /// Reads the time from `clock` instead (for the cache's expiry).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Gives each upstream `timeout` per transport instead of [`UPSTREAM_TIMEOUT`].
    pub fn with_upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// Keeps at most `capacity` answers instead of [`CACHE_CAPACITY`].
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = Mutex::new(Cache::new(capacity));
        self
    }

    /// Applies a reloaded policy to every query read from now on. Cached answers stay: each
    /// query is judged by the current policy before the cache is consulted, and a cached answer
    /// serves only if its addresses were opened for all the ports the policy now names.
    pub fn set_policy(&self, policy: Arc<P>) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = policy;
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Forgets every cached answer (the allow sets were emptied: a cache hit opens nothing).
    pub fn clear_cache(&self) {
        self.lock_cache().clear();
    }

    /// Answers kept in the cache now.
    pub fn cached_answers(&self) -> usize {
        self.lock_cache().len()
    }

    fn current_policy(&self) -> Arc<P> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    // A panic cannot happen while the lock is held (the cache code does not panic), and the
    // cache stays consistent if one did: take the data back from a poisoned lock.
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
