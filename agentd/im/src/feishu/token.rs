//! The tenant access token: `POST /open-apis/auth/v3/tenant_access_token/internal` with the
//! app id and secret gives a token for `expire` seconds (two hours). It is kept and used until
//! [`REFRESH_MARGIN`] before it expires, then fetched anew; a call whose token the server
//! refuses early (`call.rs`) forgets it. One fetch at a time: calls that find the token stale
//! together wait for the same fetch.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use super::call::{ApiFailure, failure_error, read_reply, retry_after};
use super::{CALL_TIMEOUT, CHANNEL, Feishu};
use crate::Error;

/// A token is replaced when less than this is left of its life.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How many of the tokens this channel was given are remembered for redaction.
const REMEMBERED: usize = 4;

#[derive(Default)]
pub(super) struct TokenCache {
    state: Mutex<State>,
    /// Held while a token is fetched.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// The last few tokens, newest last: none of them may appear in an error.
    given: Vec<String>,
}

struct Current {
    value: String,
    refresh_at: Instant,
}

impl TokenCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The token, unless it is due for refreshing.
    fn fresh(&self, now: Instant) -> Option<String> {
        let state = self.lock();
        let current = state.current.as_ref()?;
        (now < current.refresh_at).then(|| current.value.clone())
    }

    fn store(&self, value: &str, lifetime: Duration, now: Instant) {
        // A token that lives less than twice the margin (never seen from the real server) is
        // refreshed half-way instead.
        let usable = match lifetime > REFRESH_MARGIN * 2 {
            true => lifetime - REFRESH_MARGIN,
            false => lifetime / 2,
        };
        let mut state = self.lock();
        state.current = Some(Current {
            value: value.to_string(),
            refresh_at: now + usable,
        });
        if !state.given.iter().any(|given| given == value) {
            state.given.push(value.to_string());
        }
        let excess = state.given.len().saturating_sub(REMEMBERED);
        state.given.drain(..excess);
    }

    /// Forgets `value` if it is still the current token (the server refused it).
    pub fn forget(&self, value: &str) {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|current| current.value == value)
        {
            state.current = None;
        }
    }

    /// `text` with every remembered token replaced.
    pub fn redact(&self, text: &str) -> String {
        let state = self.lock();
        state
            .given
            .iter()
            .filter(|token| !token.is_empty())
            .fold(text.to_string(), |text, token| {
                text.replace(token.as_str(), "<token>")
            })
    }
}

impl Feishu {
    /// A tenant token with at least [`REFRESH_MARGIN`] of life left.
    pub(super) async fn tenant_token(&self) -> Result<String, Error> {
        if let Some(token) = self.token.fresh(Instant::now()) {
            return Ok(token);
        }
        let _one_fetch = self.token.fetching.lock().await;
        if let Some(token) = self.token.fresh(Instant::now()) {
            return Ok(token);
        }
        let (token, lifetime) = self.fetch_token().await?;
        self.token.store(&token, lifetime, Instant::now());
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<(String, Duration), Error> {
        const WHAT: &str = "tenant_access_token";
        let url = format!(
            "{}/open-apis/auth/v3/tenant_access_token/internal",
            self.base
        );
        let body = json!({"app_id": self.app_id, "app_secret": self.app_secret});
        let response = self
            .http
            .post(url)
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.transport(WHAT, error))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport(WHAT, error))?;
        let reply = match read_reply(status, wait, &body) {
            Ok(Ok(reply)) => reply,
            Ok(Err(failure)) => return Err(refused(failure)),
            Err(detail) => return Err(protocol(&detail)),
        };
        let token = reply["tenant_access_token"]
            .as_str()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| protocol("the answer has no tenant_access_token"))?;
        let seconds = reply["expire"]
            .as_u64()
            .filter(|seconds| *seconds > 0)
            .ok_or_else(|| protocol("the answer has no expire"))?;
        Ok((token.to_string(), Duration::from_secs(seconds)))
    }
}

/// A code from the token endpoint means the app id or secret is wrong (10003, 10014, …) unless
/// it is a rate limit or the server failing.
fn refused(failure: ApiFailure) -> Error {
    let server_side = failure.rate_limited() || failure.status.is_server_error();
    match (failure.code, server_side) {
        (Some(_), false) => Error::Unauthorized {
            channel: CHANNEL,
            detail: format!("tenant_access_token: {}", failure.describe()),
        },
        _ => failure_error("tenant_access_token", failure),
    }
}

fn protocol(detail: &str) -> Error {
    Error::Protocol {
        channel: CHANNEL,
        detail: format!("tenant_access_token: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_five_minutes_before_it_expires() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.store("t-one", Duration::from_secs(7200), now);
        assert_eq!(
            cache.fresh(now + Duration::from_secs(6899)).as_deref(),
            Some("t-one")
        );
        assert_eq!(cache.fresh(now + Duration::from_secs(6900)), None);
        // A short-lived one is used for half its life.
        cache.store("t-two", Duration::from_secs(60), now);
        assert_eq!(
            cache.fresh(now + Duration::from_secs(29)).as_deref(),
            Some("t-two")
        );
        assert_eq!(cache.fresh(now + Duration::from_secs(30)), None);
    }

    #[test]
    fn a_refused_token_is_forgotten_unless_a_newer_one_replaced_it() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.store("t-old", Duration::from_secs(7200), now);
        cache.store("t-new", Duration::from_secs(7200), now);
        cache.forget("t-old");
        assert_eq!(cache.fresh(now).as_deref(), Some("t-new"));
        cache.forget("t-new");
        assert_eq!(cache.fresh(now), None);
    }

    #[test]
    fn every_remembered_token_is_redacted() {
        let cache = TokenCache::default();
        let now = Instant::now();
        for token in ["t-1", "t-2", "t-3", "t-4", "t-5"] {
            cache.store(token, Duration::from_secs(7200), now);
        }
        assert_eq!(cache.redact("t-2 t-3 t-5"), "<token> <token> <token>");
        assert_eq!(cache.redact("t-1"), "t-1", "only the last four are kept");
    }
}
