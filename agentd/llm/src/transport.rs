//! One exchange with one provider: send the body, map a failed status, read the SSE stream
//! into an [`Answer`] under two clocks (the whole exchange, and the silence between chunks).
//! The key goes in a header marked sensitive and never into an error.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};

use crate::answer::Answer;
use crate::error::{Error, ProviderId, http_reason};
use crate::types::ApiKind;
use crate::{anthropic, openai, sse};

/// How long a provider may take: for the whole exchange, and between two chunks of it
/// (the response head counts as the first chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub request: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(120),
            idle: Duration::from_secs(30),
        }
    }
}

/// The largest event (and error body) read: a reply bigger than this is not a chat reply.
const MOST_PENDING: usize = 4 << 20;
const MOST_ERROR_BODY: usize = 64 << 10;

/// Where and how to reach one provider.
pub(crate) struct Target<'a> {
    pub id: &'a ProviderId,
    pub api: ApiKind,
    pub endpoint: &'a Url,
    /// For scrubbing provider messages only; it travels in `auth`.
    pub key: &'a str,
    /// The key's header value, marked sensitive so that hyper never prints it: for OpenAI
    /// `Bearer <key>` in `authorization`, for Anthropic the key in `x-api-key`.
    pub auth: &'a HeaderValue,
}

/// Sends `body` to `target` and reads the whole reply.
pub(crate) async fn exchange(
    http: &Client,
    target: &Target<'_>,
    body: Vec<u8>,
    timeouts: Timeouts,
) -> Result<Answer, Error> {
    match tokio::time::timeout(timeouts.request, attempt(http, target, body, timeouts.idle)).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(
            target,
            format!(
                "no complete reply within {} s",
                timeouts.request.as_secs_f32()
            ),
        )),
    }
}

fn unreachable(target: &Target<'_>, reason: String) -> Error {
    Error::Unreachable {
        provider: target.id.clone(),
        reason,
    }
}

async fn attempt(
    http: &Client,
    target: &Target<'_>,
    body: Vec<u8>,
    idle: Duration,
) -> Result<Answer, Error> {
    let silent = |what: &str| {
        unreachable(
            target,
            format!("nothing {what} for {} s", idle.as_secs_f32()),
        )
    };
    let request = http
        .post(target.endpoint.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "text/event-stream");
    let request = match target.api {
        ApiKind::OpenAi => request.header(AUTHORIZATION, target.auth.clone()),
        ApiKind::Anthropic => request
            .header("x-api-key", target.auth.clone())
            .header("anthropic-version", anthropic::VERSION),
    };
    let response = tokio::time::timeout(idle, request.body(body).send())
        .await
        .map_err(|_| silent("came back"))?
        .map_err(|error| unreachable(target, http_reason(error)))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = error_body(response, idle).await;
        return Err(crate::status::error_for_status(
            target.id.clone(),
            status.as_u16(),
            retry_after.as_deref(),
            &body,
            target.key,
        ));
    }
    let mut decoder = Decoder::new(target);
    let mut parser = sse::Parser::new();
    let mut stream = response.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(silent("more of the reply came")),
            Ok(None) => return decoder.finish(),
            Ok(Some(Err(error))) => {
                let reason = format!("the reply broke off: {}", http_reason(error));
                return Err(unreachable(target, reason));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        for event in parser.feed(&chunk) {
            if decoder.event(&event)? {
                // Done: what follows (nothing, or the end of the chunked body) is not needed.
                return decoder.finish();
            }
        }
        if parser.pending_len() > MOST_PENDING {
            return Err(Error::BadReply {
                provider: target.id.clone(),
                reason: format!("one event grew past {} MiB", MOST_PENDING >> 20),
            });
        }
    }
}

/// The start of an error body, for its message; a slow or broken one is read as empty.
async fn error_body(response: reqwest::Response, idle: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(idle, stream.next()).await {
        body.extend_from_slice(&chunk);
        if body.len() >= MOST_ERROR_BODY {
            body.truncate(MOST_ERROR_BODY);
            break;
        }
    }
    body
}

/// The stream reader for the provider's API.
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    fn new(target: &Target<'_>) -> Decoder {
        match target.api {
            ApiKind::OpenAi => Decoder::OpenAi(openai::Decoder::new(target.id.clone(), target.key)),
            ApiKind::Anthropic => {
                Decoder::Anthropic(anthropic::Decoder::new(target.id.clone(), target.key))
            }
        }
    }

    fn event(&mut self, event: &sse::Event) -> Result<bool, Error> {
        match self {
            Decoder::OpenAi(decoder) => decoder.event(event),
            Decoder::Anthropic(decoder) => decoder.event(event),
        }
    }

    fn finish(self) -> Result<Answer, Error> {
        match self {
            Decoder::OpenAi(decoder) => decoder.finish(),
            Decoder::Anthropic(decoder) => decoder.finish(),
        }
    }
}
