//! What the fake LLM does next: the steps a test queues, and the reply plan they become
//! before a wire format (OpenAI or Anthropic) renders it.

use std::time::Duration;

use serde_json::Value;

/// One scripted answer, used by the next well-formed request with the right key.
#[derive(Clone, Debug, PartialEq)]
pub enum Script {
    /// A text reply streamed one piece per chunk.
    Text(Vec<String>),
    /// Tool calls (name, arguments), after `text` when it is not empty. Each call's
    /// arguments are streamed as several fragments of their JSON text.
    Tools {
        text: String,
        calls: Vec<(String, Value)>,
    },
    /// An HTTP error with the API's own error body for `message`.
    Fail {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// An HTTP error with exactly this body (a proxy's HTML page, say).
    Raw {
        status: u16,
        content_type: String,
        body: String,
        retry_after: Option<u64>,
    },
    /// A redirect to `location` (a client must not follow it with the key).
    Redirect { status: u16, location: String },
    /// A text reply whose connection drops after the opening and `after` pieces.
    Cut { text: Vec<String>, after: usize },
    /// The text, then the API's error event, as a provider that fails mid-reply sends.
    ErrorMidStream { text: Vec<String>, message: String },
    /// Waits `delay` before the response head, then does `then`.
    Slow { delay: Duration, then: Box<Script> },
}

impl Script {
    /// `text` streamed a word at a time (each piece keeps its following space).
    pub fn text(text: &str) -> Script {
        Script::Text(pieces(text))
    }

    /// One tool call and no text.
    pub fn tool(name: &str, arguments: Value) -> Script {
        Script::Tools {
            text: String::new(),
            calls: vec![(name.to_owned(), arguments)],
        }
    }

    /// An HTTP error in the API's shape.
    pub fn fail(status: u16, message: &str) -> Script {
        Script::Fail {
            status,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    /// HTTP 429 with `retry-after: <seconds>`.
    pub fn rate_limited(seconds: u64) -> Script {
        Script::Fail {
            status: 429,
            message: "Rate limit reached for requests".to_owned(),
            retry_after: Some(seconds),
        }
    }

    /// `text` streamed, but the connection drops after `after` of its pieces.
    pub fn cut(text: &str, after: usize) -> Script {
        Script::Cut {
            text: pieces(text),
            after,
        }
    }

    /// `then`, after `delay` without a byte.
    pub fn slow(delay: Duration, then: Script) -> Script {
        Script::Slow {
            delay,
            then: Box::new(then),
        }
    }
}

/// A reply to render: text pieces, then tool calls with their argument fragments.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub text: Vec<String>,
    pub calls: Vec<PlannedCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedCall {
    pub id: String,
    pub name: String,
    /// The arguments' JSON text in pieces; together they are the whole text.
    pub fragments: Vec<String>,
}

impl Plan {
    pub fn full_text(&self) -> String {
        self.text.concat()
    }

    pub fn arguments(call: &PlannedCall) -> String {
        call.fragments.concat()
    }
}

/// Words with their trailing spaces; never empty (an empty text is one empty piece).
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    }
}

/// `json`'s text cut into about four fragments on character boundaries, as the real APIs
/// stream tool arguments.
pub(crate) fn fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    let size = chars.len().div_ceil(4).max(1);
    chars
        .chunks(size)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

/// A rough token count (four bytes a token), so usage numbers move with the text.
pub(crate) fn tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_fragments_join_back_to_the_whole() {
        assert_eq!(pieces("ok: hi there"), ["ok: ", "hi ", "there"]);
        assert_eq!(pieces(""), [""]);
        let json = r#"{"city":"Zürich","days":3}"#;
        let parts = fragments(json);
        assert!(parts.len() >= 3, "{parts:?}");
        assert_eq!(parts.concat(), json);
        assert_eq!(fragments("{}").concat(), "{}");
    }
}
