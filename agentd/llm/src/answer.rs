//! What a decoded reply stream yields, whichever API it came from, and the one rule both
//! APIs share for turning streamed tool arguments into JSON.

use crate::error::{Error, ProviderId};
use crate::types::{ToolCall, Usage};

/// A complete answer: the client adds which provider gave it and what the request weighed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
}

/// A tool call whose arguments arrived as JSON text in fragments.
#[derive(Clone, Debug, Default)]
pub(crate) struct PartialCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl PartialCall {
    /// The finished call. No arguments at all mean an empty object (tools without
    /// parameters; some servers send "" for them). `cut_short` says the reply hit its token
    /// limit, the usual reason for arguments that do not parse.
    pub fn finish(self, provider: &ProviderId, cut_short: bool) -> Result<ToolCall, Error> {
        if self.name.is_empty() {
            return Err(Error::BadReply {
                provider: provider.clone(),
                reason: format!("the tool call {:?} names no tool", self.id),
            });
        }
        let arguments = if self.arguments.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&self.arguments).map_err(|error| {
                let mut reason = error.to_string();
                if cut_short {
                    reason.push_str("; the reply hit its max_tokens limit, raise it");
                }
                Error::BadToolArguments {
                    provider: provider.clone(),
                    tool: self.name.clone(),
                    reason,
                }
            })?
        };
        Ok(ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        })
    }
}

/// A reply stream that ended (cleanly) before its end marker: cut, or not a stream at all.
pub(crate) fn ended_early(provider: &ProviderId, events: usize, marker: &str) -> Error {
    if events == 0 {
        Error::BadReply {
            provider: provider.clone(),
            reason: "the answer held no server-sent events (does it stream this API?)".into(),
        }
    } else {
        Error::Unreachable {
            provider: provider.clone(),
            reason: format!("the reply stream ended before {marker}; it was cut off"),
        }
    }
}

/// A usage counter in a provider's JSON; absent counts as 0.
pub(crate) fn number(object: &serde_json::Value, field: &str) -> u64 {
    object
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
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

    fn call(arguments: &str) -> PartialCall {
        PartialCall {
            id: "c1".into(),
            name: "lamp".into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn arguments_parse_and_empty_means_no_arguments() {
        let done = call(r#"{"on":true}"#).finish(&provider(), false).unwrap();
        assert_eq!(done.arguments, serde_json::json!({"on": true}));
        let done = call("").finish(&provider(), false).unwrap();
        assert_eq!(done.arguments, serde_json::json!({}));
    }

    #[test]
    fn bad_arguments_name_the_tool_and_the_likely_cause() {
        let error = call(r#"{"on":tr"#).finish(&provider(), true).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("\"lamp\"") && text.contains("max_tokens"),
            "{text}"
        );
        let mut nameless = call("{}");
        nameless.name.clear();
        assert!(matches!(
            nameless.finish(&provider(), false),
            Err(Error::BadReply { .. })
        ));
    }
}
