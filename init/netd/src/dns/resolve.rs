//! One query from bytes in to bytes out: the decision, then the cache, the upstreams and the
//! firewall, in the order that keeps the rule "no client holds an address that is not open".

use std::net::IpAddr;

use hickory_proto::op::Message;

use super::answer::read_response;
use super::query::{Decision, DropReason, Question, Rejection, decide};
use super::reply::{self, Transport};
use super::stats::Counter;
use super::upstream::exchange;
use super::wire::WireAnswer;
use super::{AllowSink, NamePolicy, Stub};
use crate::Error;

/// How far a message gets without waiting for anything.
pub(crate) enum Step {
    /// The reply (or `None`: no reply at all), ready now.
    Done(Option<Vec<u8>>),
    /// An allowed question the cache cannot answer: ask upstream with [`Stub::resolve`].
    Resolve(Question),
}

impl<P: NamePolicy, S: AllowSink> Stub<P, S> {
    /// The reply to one client message that arrived over `transport`, or `None` when it gets
    /// none (see [`DropReason`]).
    pub async fn handle(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        match self.step(request, transport) {
            Step::Done(reply) => reply,
            Step::Resolve(question) => self.resolve(question, transport).await,
        }
    }

    /// Everything that needs no waiting: the decision (the policy first, always), then the
    /// cache. Synchronous, so the UDP loop answers refusals and cache hits without a task.
    pub(crate) fn step(&self, request: &[u8], transport: Transport) -> Step {
        self.stats.bump(Counter::Queries);
        let policy = self.current_policy();
        let question = match decide(request, &*policy) {
            Decision::Drop(DropReason::NoHeader | DropReason::NotAQuery) => {
                self.stats.bump(Counter::Dropped);
                return Step::Done(None);
            }
            Decision::Reply { message, reason } => {
                self.stats.bump(match reason {
                    Rejection::Malformed | Rejection::NotOneQuestion => Counter::Formerr,
                    Rejection::NotAQueryOpcode => Counter::NotImplemented,
                    Rejection::Refused => Counter::Refused,
                });
                // Header and question only: within the classic 512 bytes whatever the client.
                return Step::Done(encoded(&message, reply::size_limit(transport, None)));
            }
            Decision::Resolve(question) => question,
        };
        let now = (self.clock)();
        let cached = self.lock_cache().fresh(&question.key, &question.ports, now);
        let Some(cached) = cached else {
            return Step::Resolve(question);
        };
        self.stats.bump(Counter::CacheHits);
        self.stats.bump(Counter::Answered);
        let limit = reply::size_limit(transport, question.client_payload);
        match cached.reply(&question, request, limit) {
            Ok(bytes) => Step::Done(Some(bytes)),
            Err(error) => {
                eprintln!(
                    "dns: encoding the cached reply to {}: {error}",
                    question.query
                );
                Step::Done(None)
            }
        }
    }

    /// The reply to `question` from the upstreams, after its addresses were opened.
    pub(crate) async fn resolve(
        &self,
        question: Question,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let message = self.ask_upstream(&question).await;
        encoded(
            &message,
            reply::size_limit(transport, question.client_payload),
        )
    }

    async fn ask_upstream(&self, question: &Question) -> Message {
        let upstreams = self.upstreams.borrow().clone();
        let response = match exchange(
            &upstreams,
            &question.query,
            self.upstream_timeout,
            &self.stats,
        )
        .await
        {
            Ok(response) => response,
            Err(_) => {
                // Counted per attempt in upstream_failures; a line per query would flood the
                // log whenever the uplink is down.
                self.stats.bump(Counter::Servfail);
                return reply::servfail(question);
            }
        };
        let resolved = read_response(response, question.query.name());
        // The cache entry's life starts before the firewall's does, so it ends first too.
        let opened_at = (self.clock)();
        if let Err(error) = self
            .open(question, &resolved.addresses, resolved.allow_timeout)
            .await
        {
            eprintln!("dns: {error}; answering SERVFAIL");
            self.stats.bump(Counter::Servfail);
            return reply::servfail(question);
        }
        // Kept as reply bytes: a hit copies and patches them (see `wire`).
        match WireAnswer::encode(question, resolved.answer.clone()) {
            Ok(wire) => self.lock_cache().insert(
                question.key.clone(),
                wire,
                question.ports.clone(),
                opened_at,
                resolved.lifetime,
            ),
            Err(error) => eprintln!("dns: encoding {} for the cache: {error}", question.query),
        }
        self.stats.bump(Counter::Answered);
        reply::answer(question, resolved.answer)
    }

    /// Opens every address for every port of the question's name, and returns once the sink
    /// says it is done.
    async fn open(
        &self,
        question: &Question,
        addresses: &[IpAddr],
        timeout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let Some(timeout) = timeout else {
            return Ok(());
        };
        let entries: Vec<(IpAddr, u16)> = addresses
            .iter()
            .flat_map(|&address| question.ports.iter().map(move |&port| (address, port)))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let count = entries.len() as u64;
        self.sink
            .allow(entries, timeout)
            .await
            .map_err(|reason| Error::AllowSink {
                name: question.query.name().to_ascii(),
                reason,
            })?;
        self.stats.add_allow_insertions(count);
        Ok(())
    }
}

/// `message` as bytes within `limit`, or `None` (logged) when hickory cannot write it.
fn encoded(message: &Message, limit: usize) -> Option<Vec<u8>> {
    match reply::encode(message, limit) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            eprintln!("dns: encoding the reply to {:?}: {error}", message.queries);
            None
        }
    }
}
