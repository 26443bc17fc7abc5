//! What a non-success HTTP status from a provider means for us. Both APIs put a message at
//! `error.message` in their error bodies (OpenAI `{error:{message}}`, Anthropic
//! `{type:"error", error:{type, message}}`), so one reader serves both.

use std::time::Duration;

use crate::error::{Error, ProviderId, scrub};

/// The error for an answer with this status, `retry-after` header and body.
pub(crate) fn error_for_status(
    provider: ProviderId,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    key: &str,
) -> Error {
    match status {
        401 | 403 => Error::Unauthorized { provider, status },
        429 => Error::RateLimited {
            provider,
            retry_after: retry_after
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        // A timeout on the provider's side: a network fault, not a bad request.
        408 => Error::Unreachable {
            provider,
            reason: "the provider timed out waiting for the request (HTTP 408)".into(),
        },
        // The client follows no redirects (a redirect could carry the key to another host).
        300..=399 => Error::Rejected {
            provider,
            status,
            message: "the base URL redirects elsewhere; set it to the final address".into(),
        },
        400..=499 => Error::Rejected {
            provider,
            status,
            message: scrub(&message(body), key),
        },
        _ => Error::Unreachable {
            provider,
            reason: format!("it answered HTTP {status}: {}", scrub(&message(body), key)),
        },
    }
}

/// The provider's own message: `error.message` of a JSON body, else the body's start.
fn message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(text) = json.pointer("/error/message").and_then(|m| m.as_str())
    {
        return text.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no message".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderId {
        ProviderId {
            index: 0,
            host: "h".into(),
        }
    }

    fn map(status: u16, retry_after: Option<&str>, body: &str) -> Error {
        error_for_status(
            provider(),
            status,
            retry_after,
            body.as_bytes(),
            "sk-secret",
        )
    }

    #[test]
    fn statuses_map_to_what_the_owner_can_do() {
        assert!(matches!(
            map(401, None, ""),
            Error::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(
            map(403, None, ""),
            Error::Unauthorized { status: 403, .. }
        ));
        assert!(matches!(
            map(429, Some("12"), ""),
            Error::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(12)
        ));
        assert!(matches!(
            map(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), ""),
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ));
        for status in [500, 502, 503, 529, 408] {
            assert!(
                matches!(map(status, None, ""), Error::Unreachable { .. }),
                "{status}"
            );
        }
        assert!(matches!(
            map(301, None, ""),
            Error::Rejected { status: 301, .. }
        ));
    }

    #[test]
    fn rejections_carry_the_providers_message_of_either_api() {
        let openai = r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        let Error::Rejected {
            status, message, ..
        } = map(404, None, openai)
        else {
            panic!("not Rejected");
        };
        assert_eq!(
            (status, message.as_str()),
            (404, "The model `gpt-9` does not exist")
        );
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        let error = map(400, None, anthropic);
        assert!(
            error.to_string().contains("max_tokens: Field required"),
            "{error}"
        );
        let error = map(422, None, "<html>unprocessable sk-secret</html>");
        assert!(
            error
                .to_string()
                .contains("<html>unprocessable <key></html>"),
            "{error}"
        );
    }
}
