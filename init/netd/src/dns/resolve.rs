//! One query from bytes in to bytes out: the decision, then the cache, the upstreams and the
//! firewall, in the order that keeps the rule "no client holds an address that is not open".

use std::net::IpAddr;

use hickory_proto::op::Message;

use super::answer::read_response;
use super::query::{Decision, DropReason, Question, Rejection, decide};
use super::reply::{self, Transport};
use super::stats::Counter;
use super::upstream::exchange;
use super::{AllowSink, NamePolicy, Stub};
use crate::Error;

impl<P: NamePolicy, S: AllowSink> Stub<P, S> {
    /// The reply to one client message that arrived over `transport`, or `None` when it gets
    /// none (see [`DropReason`]).
    pub async fn handle(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.stats.bump(Counter::Queries);
        let policy = self.current_policy();
        let (message, client_payload) = match decide(request, &*policy) {
            Decision::Drop(DropReason::NoHeader | DropReason::NotAQuery) => {
                self.stats.bump(Counter::Dropped);
                return None;
            }
            Decision::Reply { message, reason } => {
                self.stats.bump(match reason {
                    Rejection::Malformed | Rejection::NotOneQuestion => Counter::Formerr,
                    Rejection::NotAQueryOpcode => Counter::NotImplemented,
                    Rejection::Refused => Counter::Refused,
                });
                // Header and question only: within the classic 512 bytes whatever the client.
                (message, None)
            }
            Decision::Resolve(question) => {
                let client_payload = question.client_payload;
                (self.resolve(&question).await, client_payload)
            }
        };
        match reply::encode(&message, reply::size_limit(transport, client_payload)) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                eprintln!("dns: encoding the reply to {:?}: {error}", message.queries);
                None
            }
        }
    }

    async fn resolve(&self, question: &Question) -> Message {
        let now = (self.clock)();
        let cached = self.lock_cache().fresh(&question.key, &question.ports, now);
        if let Some(answer) = cached {
            self.stats.bump(Counter::CacheHits);
            self.stats.bump(Counter::Answered);
            return reply::answer(question, answer);
        }
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
        self.lock_cache().insert(
            question.key.clone(),
            resolved.answer.clone(),
            question.ports.clone(),
            opened_at,
            resolved.lifetime,
        );
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
