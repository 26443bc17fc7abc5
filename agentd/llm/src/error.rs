//! The one error type of the LLM client. Each variant says what failed, at which provider,
//! and what to do about it, in words the owner can act on (agentd shows them in the chat).
//! No variant ever holds an API key: provider messages are scrubbed of it before they land
//! here, and reqwest errors lose their URL.

use std::fmt;
use std::time::Duration;

/// Which provider an error is about: its place in the settings and its host, never its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderId {
    pub index: usize,
    /// `host` or `host:port` of the base URL.
    pub host: String,
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LLM provider #{} ({})", self.index, self.host)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no LLM provider is configured; add one (API kind, base URL, model, key) in the settings"
    )]
    NoProvider,
    #[error("LLM provider #{index}: {source}")]
    BadUrl {
        index: usize,
        source: carapace_http::Error,
    },
    #[error("{provider} has no model name; set one, e.g. gpt-4o-mini or claude-sonnet-4-5")]
    NoModel { provider: ProviderId },
    #[error("{provider} has no API key; set the key the provider issued")]
    NoKey { provider: ProviderId },
    #[error(
        "{provider} has an API key with characters a header cannot carry (a line break, a non-ASCII letter?); set it again"
    )]
    BadKey { provider: ProviderId },
    #[error("there is no LLM provider #{index}; the settings have {count}")]
    NoSuchProvider { index: usize, count: usize },
    #[error("{provider} refused the API key (HTTP {status}); the owner must set a valid key")]
    Unauthorized { provider: ProviderId, status: u16 },
    #[error("{provider} is rate-limiting this key (HTTP 429){}; wait, or add another provider", retry_text(.retry_after))]
    RateLimited {
        provider: ProviderId,
        /// The provider's `retry-after`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    #[error(
        "{provider} rejected the request (HTTP {status}): {message}; check the model name and base URL"
    )]
    Rejected {
        provider: ProviderId,
        status: u16,
        message: String,
    },
    #[error("{provider} is unreachable: {reason}")]
    Unreachable {
        provider: ProviderId,
        reason: String,
    },
    #[error(
        "{provider} sent a reply this client cannot read: {reason}; check the base URL and the API kind"
    )]
    BadReply {
        provider: ProviderId,
        reason: String,
    },
    #[error(
        "{provider}: the model called the tool {tool:?} with arguments that are not JSON ({reason}); ask again"
    )]
    BadToolArguments {
        provider: ProviderId,
        tool: String,
        reason: String,
    },
    #[error("no LLM provider answered: {}", list(.0))]
    NoProviderAnswered(Vec<Error>),
}

impl Error {
    /// Whether the next provider should be tried: the fault is this provider's (down, slow,
    /// over its limit, a broken stream, a key it refuses, a reply in the wrong format), not
    /// the request's, so another provider may well answer. A rejected request or a model's
    /// bad tool arguments would most likely fail again elsewhere, and are returned at once.
    pub(crate) fn fails_over(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::RateLimited { .. }
                | Error::Unauthorized { .. }
                | Error::BadReply { .. }
        )
    }
}

fn retry_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(", retry after {} s", wait.as_secs()),
        None => String::new(),
    }
}

fn list(errors: &[Error]) -> String {
    let parts: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
    parts.join(" | ")
}

/// `text` with every occurrence of `key` replaced, and cut to a length a chat message and a
/// log line can carry. Provider messages go through this: some echo (part of) the key.
pub(crate) fn scrub(text: &str, key: &str) -> String {
    const MOST: usize = 300;
    let mut clean = if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, "<key>")
    };
    if clean.len() > MOST {
        let mut end = MOST;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push('…');
    }
    clean
}

/// A reqwest error as text: each cause in its chain, without the URL (it may carry a key).
/// The MCP client says its failures the same way.
pub fn http_reason(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest repeat an inner message in the outer one at times.
        if !reason.contains(&cause_text) {
            reason.push_str(": ");
            reason.push_str(&cause_text);
        }
        source = cause.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderId {
        ProviderId {
            index: 1,
            host: "api.example.com".into(),
        }
    }

    #[test]
    fn scrub_removes_the_key_and_bounds_the_length() {
        assert_eq!(
            scrub("bad key sk-123 given", "sk-123"),
            "bad key <key> given"
        );
        let long = "é".repeat(400);
        let short = scrub(&long, "k");
        assert!(short.len() <= 304 && short.ends_with('…'), "{short}");
    }

    #[test]
    fn messages_name_the_provider_and_the_remedy() {
        let error = Error::RateLimited {
            provider: provider(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            error.to_string(),
            "LLM provider #1 (api.example.com) is rate-limiting this key (HTTP 429), retry after 7 s; wait, or add another provider"
        );
        let all = Error::NoProviderAnswered(vec![
            Error::Unauthorized {
                provider: provider(),
                status: 401,
            },
            error,
        ]);
        assert!(
            all.to_string().contains("valid key | LLM provider #1"),
            "{all}"
        );
    }
}
