//! One Bot API call: the request, the reply envelope, and failures mapped onto the channel's
//! errors. The token is part of every URL, so no message here comes from reqwest's Display
//! with the URL in it (`without_url`), and every detail passes through `Token::redact` too.

use crate::status_text::status_text;
use std::error::Error as _;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::Form;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::Envelope;
use super::{CHANNEL, Telegram};
use crate::Error;

/// How long to wait after a 429 that names no retry_after.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

pub(super) enum Payload {
    Json(Value),
    Multipart(Form),
}

/// A failure the Bot API reported, or that the HTTP status says when the body is not the
/// API's JSON (a gateway's HTML error page).
pub(super) struct ApiFailure {
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl Telegram {
    /// Calls `method` and returns its result.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<T, Error> {
        self.try_call(method, payload, timeout)
            .await?
            .map_err(|failure| self.failure(method, failure))
    }

    /// Like `call`, but hands a failure the API reported back to the caller, to act on its
    /// code (getUpdates' 409).
    pub(super) async fn try_call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Result<T, ApiFailure>, Error> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.0);
        let request = self.http.post(url).timeout(timeout);
        let request = match payload {
            Payload::Json(value) => request.json(&value),
            Payload::Multipart(form) => request.multipart(form),
        };
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(method, error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport(method, error))?;
        read_reply(status, &body).map_err(|detail| Error::Protocol {
            channel: CHANNEL,
            detail: self.token.redact(&format!("{method}: {detail}")),
        })
    }

    /// The channel error for a failure the API reported.
    pub(super) fn failure(&self, method: &str, failure: ApiFailure) -> Error {
        let detail = self
            .token
            .redact(&format!("{method}: {}", failure.description));
        match failure.code {
            // 404 on a method path means the token has the wrong shape (we only call methods
            // that exist), so it is a credentials problem too.
            401 | 404 => Error::Unauthorized {
                channel: CHANNEL,
                detail,
            },
            429 => Error::RateLimited {
                channel: CHANNEL,
                retry_after: failure
                    .retry_after
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_RETRY_AFTER),
                detail,
            },
            500..=599 => Error::Unreachable {
                channel: CHANNEL,
                detail,
            },
            400..=499 => Error::Rejected {
                channel: CHANNEL,
                detail,
            },
            _ => Error::Protocol {
                channel: CHANNEL,
                detail,
            },
        }
    }

    /// A request that got no HTTP answer (connect, TLS, timeout, a cut body), described from
    /// the error chain without the URL.
    pub(super) fn transport(&self, what: &str, error: reqwest::Error) -> Error {
        let error = error.without_url();
        let mut text = format!("{what}: {error}");
        if error.is_timeout() {
            text.push_str(" (timed out)");
        }
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        let detail = self.token.redact(&text);
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

/// The result of a reply, the failure it reports, or (Err) why it cannot be read.
pub(super) fn read_reply<T: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
) -> Result<Result<T, ApiFailure>, String> {
    match serde_json::from_slice::<Envelope<T>>(body) {
        Ok(envelope) if envelope.ok => match envelope.result {
            Some(result) => Ok(Ok(result)),
            None => Err("the answer says ok but has no result".into()),
        },
        Ok(envelope) => Ok(Err(ApiFailure {
            code: envelope.error_code.unwrap_or(status.as_u16()),
            description: envelope.description.unwrap_or_else(|| status_text(status)),
            retry_after: envelope.parameters.and_then(|p| p.retry_after),
        })),
        Err(_) if !status.is_success() => Ok(Err(ApiFailure {
            code: status.as_u16(),
            description: status_text(status),
            retry_after: None,
        })),
        Err(error) => Err(format!("the answer does not parse: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, body: &str) -> Result<Result<i64, ApiFailure>, String> {
        read_reply(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn a_result_is_read() {
        assert!(matches!(read(200, r#"{"ok":true,"result":7}"#), Ok(Ok(7))));
    }

    #[test]
    fn the_api_error_envelope_is_read() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        let failure = read(429, body).unwrap().err().unwrap();
        assert_eq!(failure.code, 429);
        assert_eq!(failure.retry_after, Some(3));
        assert!(failure.description.starts_with("Too Many Requests"));
    }

    #[test]
    fn a_gateway_page_is_classified_by_its_status() {
        let failure = read(502, "<html>502 Bad Gateway</html>")
            .unwrap()
            .err()
            .unwrap();
        assert_eq!(failure.code, 502);
        assert_eq!(failure.description, "HTTP 502 Bad Gateway");
    }

    #[test]
    fn nonsense_with_a_success_status_is_unreadable() {
        assert!(read(200, "<html>").is_err());
        assert!(read(200, r#"{"ok":true}"#).is_err());
        assert!(read(200, r#"{"ok":true,"result":"seven"}"#).is_err());
    }
}
