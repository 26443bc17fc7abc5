//! The Anthropic Messages API: the request body (content blocks, strictly alternating
//! roles) and the reader that assembles a streamed reply from its named events.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::answer::{Answer, PartialCall, ended_early, number};
use crate::error::{Error, ProviderId, scrub};
use crate::sse::Event;
use crate::types::{Message, Request, Usage};

/// `{base_url}/v1/messages`.
pub(crate) const PATH: &str = "v1/messages";
pub(crate) const VERSION: &str = "2023-06-01";

/// The JSON body for `request`, streamed.
pub(crate) fn body(model: &str, max_tokens: u32, request: &Request) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": messages(&request.messages),
        "stream": true,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

/// The conversation as user/assistant turns that alternate, as the API requires: tool
/// results ride in a user turn, and consecutive turns of one role become one. Empty text is
/// left out (the API rejects empty text blocks and turns with no content).
fn messages(messages: &[Message]) -> Vec<Value> {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = blocks(message);
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, mut content)| {
            // Tool results must open the user turn that follows the calls.
            content.sort_by_key(|block| block["type"] != "tool_result");
            json!({"role": role, "content": content})
        })
        .collect()
}

fn blocks(message: &Message) -> (&'static str, Vec<Value>) {
    match message {
        // Images before the text, as Anthropic advises.
        Message::User { text, images } => {
            let mut blocks: Vec<Value> = images
                .iter()
                .map(|image| {
                    json!({"type": "image", "source": {
                        "type": "base64", "media_type": image.media_type, "data": image.base64(),
                    }})
                })
                .collect();
            blocks.extend(text_block(text));
            ("user", blocks)
        }
        Message::Assistant { text, tool_calls } => {
            let mut blocks: Vec<Value> = text_block(text).into_iter().collect();
            blocks.extend(tool_calls.iter().map(|call| {
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
            }));
            ("assistant", blocks)
        }
        Message::ToolResult {
            call_id,
            content,
            is_error,
        } => (
            "user",
            vec![json!({
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": content,
                "is_error": is_error,
            })],
        ),
    }
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

#[derive(Debug)]
enum Block {
    Text(String),
    /// A tool call; `start_input` is the `input` of its start event, used when no
    /// `input_json_delta` follows.
    Tool {
        call: PartialCall,
        start_input: Value,
    },
    /// Thinking and any block type added after this was written: not ours to read.
    Other,
}

/// Assembles one streamed reply. Feed it every event; it says when `message_stop` came.
#[derive(Debug)]
pub(crate) struct Decoder {
    provider: ProviderId,
    key: String,
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<String>,
    events: usize,
    done: bool,
}

impl Decoder {
    pub fn new(provider: ProviderId, key: &str) -> Decoder {
        Decoder {
            provider,
            key: key.to_owned(),
            blocks: BTreeMap::new(),
            usage: Usage::default(),
            stop_reason: None,
            events: 0,
            done: false,
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadReply {
            provider: self.provider.clone(),
            reason,
        }
    }

    /// Takes one event; `Ok(true)` once the stream is complete.
    pub fn event(&mut self, event: &Event) -> Result<bool, Error> {
        self.events += 1;
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|error| self.bad(format!("the {} event is not JSON: {error}", event.event)))?;
        // The data repeats the event's name as `type`; it is the more reliable of the two.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event);
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let usage = data.pointer("/message/usage").unwrap_or(&Value::Null);
                // Tokens read from or written to the prompt cache are input too.
                self.usage.input_tokens = number(usage, "input_tokens")
                    + number(usage, "cache_creation_input_tokens")
                    + number(usage, "cache_read_input_tokens");
                self.usage.output_tokens = number(usage, "output_tokens");
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let start = match block.get("type").and_then(Value::as_str) {
                    Some("text") => Block::Text(text(block, "text").to_owned()),
                    Some("tool_use") => Block::Tool {
                        call: PartialCall {
                            id: text(block, "id").to_owned(),
                            name: text(block, "name").to_owned(),
                            arguments: String::new(),
                        },
                        start_input: block.get("input").cloned().unwrap_or(Value::Null),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, start);
            }
            "content_block_delta" => {
                self.delta(index, data.get("delta").unwrap_or(&Value::Null))?
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(output) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = output;
                }
            }
            "message_stop" => {
                self.done = true;
                return Ok(true);
            }
            "error" => {
                let error = data.get("error").unwrap_or(&Value::Null);
                return Err(Error::Unreachable {
                    provider: self.provider.clone(),
                    reason: format!(
                        "it failed mid-reply: {}: {}",
                        text(error, "type"),
                        scrub(text(error, "message"), &self.key)
                    ),
                });
            }
            // ping, content_block_stop, and event types newer than this reader.
            _ => {}
        }
        Ok(false)
    }

    fn delta(&mut self, index: u64, delta: &Value) -> Result<(), Error> {
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let piece = text(delta, "text");
                match self
                    .blocks
                    .entry(index)
                    .or_insert(Block::Text(String::new()))
                {
                    Block::Text(text) => text.push_str(piece),
                    _ => return Err(self.bad(format!("text for block {index}, not a text block"))),
                }
            }
            Some("input_json_delta") => {
                let piece = text(delta, "partial_json");
                match self.blocks.get_mut(&index) {
                    Some(Block::Tool { call, .. }) => call.arguments.push_str(piece),
                    _ => {
                        return Err(self.bad(format!(
                            "tool input for block {index}, not a tool_use block"
                        )));
                    }
                }
            }
            // thinking_delta, signature_delta and newer kinds.
            _ => {}
        }
        Ok(())
    }

    /// The answer, once `message_stop` was seen; an error for a stream that stopped short.
    pub fn finish(self) -> Result<Answer, Error> {
        if !self.done {
            return Err(ended_early(&self.provider, self.events, "message_stop"));
        }
        let cut_short = self.stop_reason.as_deref() == Some("max_tokens");
        let mut answer = Answer {
            usage: self.usage,
            ..Answer::default()
        };
        for block in self.blocks.into_values() {
            match block {
                Block::Text(text) => answer.text.push_str(&text),
                Block::Tool {
                    mut call,
                    start_input,
                } => {
                    if call.arguments.is_empty() && !start_input.is_null() {
                        call.arguments = start_input.to_string();
                    }
                    answer
                        .tool_calls
                        .push(call.finish(&self.provider, cut_short)?);
                }
                Block::Other => {}
            }
        }
        Ok(answer)
    }
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get(field).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Image, ToolCall, ToolSpec};

    fn decoder() -> Decoder {
        let provider = ProviderId {
            index: 0,
            host: "h".into(),
        };
        Decoder::new(provider, "sk-ant-secret")
    }

    fn feed(decoder: &mut Decoder, name: &str, data: &str) -> Result<bool, Error> {
        decoder.event(&Event {
            event: name.into(),
            data: data.into(),
        })
    }

    #[test]
    fn the_body_alternates_roles_with_tool_results_first() {
        let request = Request {
            system: "be brief".into(),
            messages: vec![
                Message::User {
                    text: "lamp on".into(),
                    images: vec![],
                },
                Message::User {
                    text: "and fan".into(),
                    images: vec![Image {
                        media_type: "image/png".into(),
                        bytes: b"\x89PNG".to_vec(),
                    }],
                },
                Message::Assistant {
                    text: "On it.".into(),
                    tool_calls: vec![
                        ToolCall {
                            id: "toolu_1".into(),
                            name: "lamp".into(),
                            arguments: json!({"on": true}),
                        },
                        ToolCall {
                            id: "toolu_2".into(),
                            name: "fan".into(),
                            arguments: json!({}),
                        },
                    ],
                },
                Message::ToolResult {
                    call_id: "toolu_1".into(),
                    content: "done".into(),
                    is_error: false,
                },
                Message::User {
                    text: "thanks".into(),
                    images: vec![],
                },
                Message::ToolResult {
                    call_id: "toolu_2".into(),
                    content: "no fan".into(),
                    is_error: true,
                },
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![],
                },
            ],
            tools: vec![ToolSpec {
                name: "lamp".into(),
                description: "switches the lamp".into(),
                parameters: json!({"type": "object"}),
            }],
        };
        let expected = json!({
            "model": "m",
            "max_tokens": 9,
            "stream": true,
            "system": "be brief",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "lamp on"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw=="}},
                    {"type": "text", "text": "and fan"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "On it."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lamp", "input": {"on": true}},
                    {"type": "tool_use", "id": "toolu_2", "name": "fan", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done", "is_error": false},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no fan", "is_error": true},
                    {"type": "text", "text": "thanks"}]},
            ],
            "tools": [{"name": "lamp", "description": "switches the lamp",
                       "input_schema": {"type": "object"}}],
        });
        assert_eq!(body("m", 9, &request), expected);
        let bare = body("m", 9, &Request::default());
        assert!(bare.get("tools").is_none() && bare.get("system").is_none());
    }

    #[test]
    fn text_tool_use_and_usage_are_assembled() {
        let mut d = decoder();
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"On "}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"it."}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"lamp","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"on\": tr"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ue}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"fan","input":{}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}"#,
            ),
        ];
        for (name, data) in events {
            assert!(!feed(&mut d, name, data).unwrap(), "{name}");
        }
        assert!(feed(&mut d, "message_stop", r#"{"type":"message_stop"}"#).unwrap());
        let answer = d.finish().unwrap();
        assert_eq!(answer.text, "On it.");
        assert_eq!(
            (answer.usage.input_tokens, answer.usage.output_tokens),
            (25, 30)
        );
        assert_eq!(answer.tool_calls.len(), 2);
        assert_eq!(answer.tool_calls[0].arguments, json!({"on": true}));
        assert_eq!(
            (
                answer.tool_calls[1].id.as_str(),
                &answer.tool_calls[1].arguments
            ),
            ("toolu_2", &json!({}))
        );
    }

    #[test]
    fn an_error_event_fails_without_the_key() {
        let mut d = decoder();
        let error = feed(
            &mut d,
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded sk-ant-secret"}}"#,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Error::Unreachable { .. }));
        assert!(
            text.contains("overloaded_error") && !text.contains("sk-ant-secret"),
            "{text}"
        );
    }

    #[test]
    fn a_stream_without_message_stop_is_cut() {
        let mut d = decoder();
        feed(&mut d, "content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hal"}}"#).unwrap();
        assert!(matches!(d.finish(), Err(Error::Unreachable { .. })));
        assert!(matches!(decoder().finish(), Err(Error::BadReply { .. })));
    }

    #[test]
    fn tool_input_for_a_block_never_started_is_a_bad_reply() {
        let mut d = decoder();
        let result = feed(
            &mut d,
            "content_block_delta",
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
        );
        assert!(matches!(result, Err(Error::BadReply { .. })));
    }

    #[test]
    fn unparsable_tool_input_names_the_tool() {
        let mut d = decoder();
        feed(&mut d, "content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"lamp","input":{}}}"#).unwrap();
        feed(&mut d, "content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"on\""}}"#).unwrap();
        feed(&mut d, "message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":1}}"#).unwrap();
        feed(&mut d, "message_stop", r#"{"type":"message_stop"}"#).unwrap();
        let error = d.finish().unwrap_err();
        assert!(matches!(&error, Error::BadToolArguments { tool, .. } if tool == "lamp"));
        assert!(error.to_string().contains("max_tokens"), "{error}");
    }
}
