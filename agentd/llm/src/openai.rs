//! The OpenAI-compatible chat completions API (OpenAI itself, and the many servers that copy
//! it, our local inference engine among them): the request body, and the reader that
//! assembles a streamed reply from its `data:` chunks.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::answer::{Answer, PartialCall, ended_early, number};
use crate::error::{Error, ProviderId, scrub};
use crate::sse::Event;
use crate::types::{Message, Request, Usage};

/// `{base_url}/chat/completions`.
pub(crate) const PATH: &str = "chat/completions";

/// The JSON body for `request`, streamed, usage included.
pub(crate) fn body(model: &str, max_tokens: u32, request: &Request) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    messages.extend(request.messages.iter().map(message));
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": max_tokens,
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                }})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

fn message(message: &Message) -> Value {
    match message {
        Message::User { text, images } if images.is_empty() => {
            json!({"role": "user", "content": text})
        }
        // With images the content is a list of parts; an image goes inline as a data URL.
        Message::User { text, images } => {
            let mut parts = vec![json!({"type": "text", "text": text})];
            parts.extend(
                images.iter().map(
                    |image| json!({"type": "image_url", "image_url": {"url": image.data_url()}}),
                ),
            );
            json!({"role": "user", "content": parts})
        }
        Message::Assistant { text, tool_calls } => {
            // The API wants content null (not "") beside tool calls, and no empty tool_calls.
            let mut value = json!({"role": "assistant", "content": text});
            if !tool_calls.is_empty() {
                if text.is_empty() {
                    value["content"] = Value::Null;
                }
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|call| {
                        json!({"id": call.id, "type": "function", "function": {
                            "name": call.name,
                            "arguments": call.arguments.to_string(),
                        }})
                    })
                    .collect();
                value["tool_calls"] = Value::Array(calls);
            }
            value
        }
        // The API has no error flag for tool results: the text says it instead.
        Message::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let content = if *is_error {
                format!("error: {content}")
            } else {
                content.clone()
            };
            json!({"role": "tool", "tool_call_id": call_id, "content": content})
        }
    }
}

/// Assembles one streamed reply. Feed it every event; it says when `[DONE]` came.
#[derive(Debug)]
pub(crate) struct Decoder {
    provider: ProviderId,
    key: String,
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    usage: Usage,
    finish_reason: Option<String>,
    events: usize,
    done: bool,
}

impl Decoder {
    pub fn new(provider: ProviderId, key: &str) -> Decoder {
        Decoder {
            provider,
            key: key.to_owned(),
            text: String::new(),
            calls: BTreeMap::new(),
            usage: Usage::default(),
            finish_reason: None,
            events: 0,
            done: false,
        }
    }

    /// Takes one event; `Ok(true)` once the stream is complete.
    pub fn event(&mut self, event: &Event) -> Result<bool, Error> {
        self.events += 1;
        if event.data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|error| Error::BadReply {
            provider: self.provider.clone(),
            reason: format!("a stream chunk is not JSON: {error}"),
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(self.failed_mid_reply(error));
        }
        if let Some(usage) = chunk.get("usage").filter(|usage| !usage.is_null()) {
            self.usage.input_tokens = number(usage, "prompt_tokens");
            self.usage.output_tokens = number(usage, "completion_tokens");
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(false);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(false);
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.text.push_str(text);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                self.tool_call_delta(call);
            }
        }
        Ok(false)
    }

    /// A fragment of a tool call. The first one of an `index` carries its id and name; the
    /// rest carry pieces of the arguments' JSON text.
    fn tool_call_delta(&mut self, call: &Value) {
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        // Servers that send each call whole may leave out `index`: a new id is a new call.
        let index = match call.get("index").and_then(Value::as_u64) {
            Some(index) => index,
            None => match self.calls.last_key_value() {
                Some((last, partial)) if id.is_empty() || partial.id == id => *last,
                Some((last, _)) => last + 1,
                None => 0,
            },
        };
        let partial = self.calls.entry(index).or_default();
        if !id.is_empty() {
            id.clone_into(&mut partial.id);
        }
        let function = call.get("function");
        if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str)
            && !name.is_empty()
        {
            name.clone_into(&mut partial.name);
        }
        match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(fragment)) => partial.arguments.push_str(fragment),
            // A few servers send the arguments as a JSON object rather than its text.
            Some(object @ Value::Object(_)) => partial.arguments = object.to_string(),
            _ => {}
        }
    }

    /// The request was accepted (HTTP 200), so an error now is the provider's, not ours.
    fn failed_mid_reply(&self, error: &Value) -> Error {
        let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        Error::Unreachable {
            provider: self.provider.clone(),
            reason: format!("it failed mid-reply: {kind}: {}", scrub(message, &self.key)),
        }
    }

    /// The answer, once `[DONE]` was seen; an error for a stream that stopped short.
    pub fn finish(self) -> Result<Answer, Error> {
        if !self.done {
            return Err(ended_early(&self.provider, self.events, "[DONE]"));
        }
        let cut_short = self.finish_reason.as_deref() == Some("length");
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, mut partial) in self.calls {
            if partial.id.is_empty() {
                // The id only has to match when the result is sent back; make one up.
                partial.id = format!("call_{index}");
            }
            tool_calls.push(partial.finish(&self.provider, cut_short)?);
        }
        Ok(Answer {
            text: self.text,
            tool_calls,
            usage: self.usage,
        })
    }
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
        Decoder::new(provider, "sk-secret")
    }

    fn feed(decoder: &mut Decoder, data: &str) -> Result<bool, Error> {
        decoder.event(&Event {
            event: "message".into(),
            data: data.into(),
        })
    }

    #[test]
    fn the_body_has_every_message_kind_in_the_api_shape() {
        let request = Request {
            system: "be brief".into(),
            messages: vec![
                Message::User {
                    text: "lamp on".into(),
                    images: vec![],
                },
                Message::User {
                    text: "this one".into(),
                    images: vec![Image {
                        media_type: "image/png".into(),
                        bytes: b"\x89PNG".to_vec(),
                    }],
                },
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "lamp".into(),
                        arguments: json!({"on": true}),
                    }],
                },
                Message::ToolResult {
                    call_id: "call_1".into(),
                    content: "no lamp".into(),
                    is_error: true,
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
            "max_tokens": 5,
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "lamp on"},
                {"role": "user", "content": [
                    {"type": "text", "text": "this one"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "lamp", "arguments": "{\"on\":true}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "error: no lamp"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "lamp", "description": "switches the lamp",
                "parameters": {"type": "object"}}}],
        });
        assert_eq!(body("m", 5, &request), expected);
        let bare = body("m", 5, &Request::default());
        assert!(bare.get("tools").is_none() && bare["messages"] == json!([]));
    }

    #[test]
    fn text_tool_calls_and_usage_are_assembled() {
        let mut d = decoder();
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Sure"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"lamp","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"fan","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"on\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":true}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#,
        ];
        for chunk in chunks {
            assert!(!feed(&mut d, chunk).unwrap());
        }
        assert!(feed(&mut d, "[DONE]").unwrap());
        let answer = d.finish().unwrap();
        assert_eq!(answer.text, "Sure");
        assert_eq!(answer.usage.input_tokens, 12);
        assert_eq!(answer.usage.output_tokens, 7);
        let calls: Vec<(&str, &str, &Value)> = answer
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), &c.arguments))
            .collect();
        assert_eq!(
            calls,
            vec![
                ("call_a", "lamp", &json!({"on": true})),
                ("call_b", "fan", &json!({}))
            ]
        );
    }

    #[test]
    fn a_stream_without_done_is_cut_and_an_empty_one_is_not_a_stream() {
        let mut d = decoder();
        feed(&mut d, r#"{"choices":[{"delta":{"content":"Hal"}}]}"#).unwrap();
        assert!(matches!(d.finish(), Err(Error::Unreachable { .. })));
        assert!(matches!(decoder().finish(), Err(Error::BadReply { .. })));
    }

    #[test]
    fn an_error_mid_stream_fails_without_the_key() {
        let mut d = decoder();
        let error = feed(
            &mut d,
            r#"{"error":{"message":"overloaded for sk-secret","type":"server_error"}}"#,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("server_error") && !text.contains("sk-secret"),
            "{text}"
        );
        assert!(matches!(
            feed(&mut decoder(), "{not json"),
            Err(Error::BadReply { .. })
        ));
    }

    #[test]
    fn unparsable_arguments_name_the_tool() {
        let mut d = decoder();
        feed(
            &mut d,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"lamp","arguments":"{\"on\":"}}]},"finish_reason":"length"}]}"#,
        )
        .unwrap();
        feed(&mut d, "[DONE]").unwrap();
        let error = d.finish().unwrap_err();
        assert!(matches!(&error, Error::BadToolArguments { tool, .. } if tool == "lamp"));
        assert!(error.to_string().contains("max_tokens"), "{error}");
    }

    #[test]
    fn calls_without_index_or_id_still_assemble() {
        let mut d = decoder();
        feed(
            &mut d,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]}}]}"#,
        )
        .unwrap();
        feed(
            &mut d,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"id-b","function":{"name":"b","arguments":"{}"}}]}}]}"#,
        )
        .unwrap();
        feed(&mut d, "[DONE]").unwrap();
        let calls = d.finish().unwrap().tool_calls;
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), &calls[0].arguments),
            ("call_0", &json!({"x": 1}))
        );
        assert_eq!(
            (calls[1].id.as_str(), calls[1].name.as_str()),
            ("id-b", "b")
        );
    }
}
