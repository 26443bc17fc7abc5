//! One OpenAPI call with the tenant token, its `{code, msg, …}` reply, and failures mapped onto
//! the channel's errors:
//!
//! - 99991663 / 99991668 (the token is invalid or expired, e.g. revoked early): the token is
//!   fetched anew and the call made once more;
//! - HTTP 429 or code 99991400: rate limited, waiting what `x-ogw-ratelimit-reset` says;
//! - HTTP 5xx, connect, TLS, timeouts: unreachable, try later;
//! - any other code: this request is refused for good.
//!
//! No detail here comes from reqwest's Display with the URL in it (`without_url`).

use crate::status_text::status_text;
use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::{CHANNEL, Feishu};
use crate::Error;

/// Codes that say the tenant token is no longer accepted.
const TOKEN_REFUSED: [i64; 2] = [99_991_663, 99_991_668];
/// The code of a rate-limited call (with HTTP 429, or 400 on older APIs).
const RATE_LIMITED: i64 = 99_991_400;
/// How long to wait after a rate limit that names no reset time.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failure the API reported, or that the HTTP status says when the body is not the API's
/// JSON (a gateway's HTML page).
#[derive(Debug)]
pub(super) struct ApiFailure {
    pub status: StatusCode,
    pub code: Option<i64>,
    pub msg: String,
    pub retry_after: Option<Duration>,
}

impl ApiFailure {
    fn token_refused(&self) -> bool {
        self.code.is_some_and(|code| TOKEN_REFUSED.contains(&code))
    }

    pub fn rate_limited(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS || self.code == Some(RATE_LIMITED)
    }

    /// "msg (code 230001)" or "HTTP 502 Bad Gateway".
    pub fn describe(&self) -> String {
        match self.code {
            Some(code) => format!("{} (code {code})", self.msg),
            None => self.msg.clone(),
        }
    }
}

/// How one attempt with a token failed.
pub(super) enum Attempt {
    /// The token was refused: fetch another and try again (once).
    TokenRefused(ApiFailure),
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Attempt {
        Attempt::Failed(error)
    }
}

impl Feishu {
    /// Runs `attempt` with the tenant token; when the server refuses the token, once more with
    /// a fresh one.
    pub(super) async fn with_token<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, Error>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let token = self.tenant_token().await?;
        let refused = match attempt(token.clone()).await {
            Ok(value) => return Ok(value),
            Err(Attempt::Failed(error)) => return Err(error),
            Err(Attempt::TokenRefused(_)) => {
                self.token.forget(&token);
                let token = self.tenant_token().await?;
                match attempt(token).await {
                    Ok(value) => return Ok(value),
                    Err(Attempt::Failed(error)) => return Err(error),
                    Err(Attempt::TokenRefused(failure)) => failure,
                }
            }
        };
        Err(Error::Unauthorized {
            channel: CHANNEL,
            detail: format!(
                "{what}: a fresh tenant token was refused too: {}",
                refused.describe()
            ),
        })
    }

    /// Calls the OpenAPI with the JSON reply `build` asks for, and returns the reply.
    pub(super) async fn call(
        &self,
        what: &str,
        timeout: Duration,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Value, Error> {
        self.with_token(what, |token| {
            let request = build().bearer_auth(token).timeout(timeout);
            async move {
                let response = request
                    .send()
                    .await
                    .map_err(|error| self.transport(what, error))?;
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let body = response
                    .bytes()
                    .await
                    .map_err(|error| self.transport(what, error))?;
                match read_reply(status, retry_after, &body) {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(failure)) => Err(self.attempt_failed(what, failure)),
                    Err(detail) => Err(Attempt::Failed(Error::Protocol {
                        channel: CHANNEL,
                        detail: format!("{what}: {detail}"),
                    })),
                }
            }
        })
        .await
    }

    /// A failure of one attempt: a refused token is retried, anything else is final.
    pub(super) fn attempt_failed(&self, what: &str, failure: ApiFailure) -> Attempt {
        match failure.token_refused() {
            true => Attempt::TokenRefused(failure),
            false => Attempt::Failed(failure_error(what, failure)),
        }
    }

    /// A request that got no HTTP answer (connect, TLS, timeout, a cut body), described from
    /// the error chain without the URL.
    pub(super) fn transport(&self, what: &str, error: reqwest::Error) -> Error {
        let error = error.without_url();
        let mut detail = format!("{what}: {error}");
        if error.is_timeout() {
            detail.push_str(" (timed out)");
        }
        let mut source = error.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_decode() {
            Error::Protocol {
                channel: CHANNEL,
                detail,
            }
        } else if error.is_builder() {
            Error::Rejected {
                channel: CHANNEL,
                detail,
            }
        } else {
            Error::Unreachable {
                channel: CHANNEL,
                detail,
            }
        }
    }
}

/// The channel error for a failure the API reported (a refused token included, once the retry
/// is spent or where there is none).
pub(super) fn failure_error(what: &str, failure: ApiFailure) -> Error {
    let detail = format!("{what}: {}", failure.describe());
    if failure.rate_limited() {
        return Error::RateLimited {
            channel: CHANNEL,
            retry_after: failure.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            detail,
        };
    }
    if failure.token_refused() {
        return Error::Unauthorized {
            channel: CHANNEL,
            detail,
        };
    }
    match failure.status.as_u16() {
        500..=599 => Error::Unreachable {
            channel: CHANNEL,
            detail,
        },
        _ => Error::Rejected {
            channel: CHANNEL,
            detail,
        },
    }
}

/// The reply of a call (`code` 0), the failure it reports, or (Err) why it cannot be read.
pub(super) fn read_reply(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Result<Value, ApiFailure>, String> {
    let reply = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|reply| reply.get("code").is_some_and(Value::is_i64));
    match reply {
        Some(reply) => {
            let code = reply["code"].as_i64().unwrap_or(-1);
            if code == 0 && status.is_success() {
                return Ok(Ok(reply));
            }
            let msg = reply["msg"].as_str().unwrap_or("").to_string();
            Ok(Err(ApiFailure {
                status,
                code: Some(code).filter(|code| *code != 0),
                msg: match msg.is_empty() {
                    true => status_text(status),
                    false => msg,
                },
                retry_after,
            }))
        }
        None if !status.is_success() => Ok(Err(ApiFailure {
            status,
            code: None,
            msg: status_text(status),
            retry_after,
        })),
        None => Err("the answer is not the OpenAPI's JSON".into()),
    }
}

/// The wait the server names after a rate limit (seconds in `x-ogw-ratelimit-reset`).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get("x-ogw-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, body: &str) -> Result<Result<Value, ApiFailure>, String> {
        read_reply(StatusCode::from_u16(status).unwrap(), None, body.as_bytes())
    }

    fn error(status: u16, body: &str) -> Error {
        failure_error("send", read(status, body).unwrap().unwrap_err())
    }

    #[test]
    fn a_reply_with_code_zero_is_the_result() {
        let reply = read(
            200,
            r#"{"code":0,"msg":"success","data":{"message_id":"om_1"}}"#,
        );
        assert_eq!(reply.unwrap().unwrap()["data"]["message_id"], "om_1");
    }

    #[test]
    fn failures_map_onto_the_channel_errors() {
        let limited = r#"{"code":99991400,"msg":"request trigger frequency limit"}"#;
        assert!(matches!(error(429, limited), Error::RateLimited { .. }));
        assert!(matches!(error(400, limited), Error::RateLimited { .. }));
        let refused = r#"{"code":230002,"msg":"The bot can not be outside the group."}"#;
        let rejected = error(400, refused);
        assert_eq!(
            rejected.to_string(),
            "feishu refused the request: send: The bot can not be outside the group. (code 230002)"
        );
        assert!(matches!(error(200, refused), Error::Rejected { .. }));
        let gateway = error(502, "<html>502 Bad Gateway</html>");
        assert!(
            matches!(&gateway, Error::Unreachable { detail, .. } if detail == "send: HTTP 502 Bad Gateway")
        );
        let expired = r#"{"code":99991663,"msg":"Invalid access token for authorization."}"#;
        assert!(read(400, expired).unwrap().unwrap_err().token_refused());
        assert!(matches!(error(400, expired), Error::Unauthorized { .. }));
    }

    #[test]
    fn the_rate_limit_reset_header_sets_the_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ogw-ratelimit-reset", "52".parse().unwrap());
        let wait = retry_after(&headers);
        assert_eq!(wait, Some(Duration::from_secs(52)));
        let body = br#"{"code":99991400,"msg":"request trigger frequency limit"}"#;
        let failure = read_reply(StatusCode::TOO_MANY_REQUESTS, wait, body)
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            failure_error("send", failure),
            Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(52)
        ));
    }

    #[test]
    fn nonsense_with_a_success_status_is_unreadable() {
        assert!(read(200, "<html>").is_err());
        assert!(read(200, r#"{"msg":"no code"}"#).is_err());
    }
}
