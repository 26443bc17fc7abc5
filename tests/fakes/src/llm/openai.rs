//! The OpenAI chat completions wire format as the fake speaks it: the bearer key check,
//! error bodies, `chat.completion.chunk` SSE frames ending in `[DONE]`, and the whole
//! `chat.completion` object for clients that do not stream.

use hyper::HeaderMap;
use serde_json::{Value, json};

use super::Frames;
use super::script::{Plan, PlannedCall};

pub(crate) fn key_matches(headers: &HeaderMap, key: &str) -> bool {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        == Some(key)
}

/// The 401 the real API gives for a missing or wrong key.
pub(crate) fn unauthorized(headers: &HeaderMap) -> Value {
    let (message, code) = if headers.contains_key(hyper::header::AUTHORIZATION) {
        (
            "Incorrect API key provided. You can find your API key in your account settings.",
            json!("invalid_api_key"),
        )
    } else {
        (
            "You didn't provide an API key. Send it in the Authorization header as Bearer auth.",
            Value::Null,
        )
    };
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}})
}

pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The API's checks that a client can get wrong: a model, and messages.
pub(crate) fn malformed(body: &Value) -> Option<String> {
    if !body.get("model").is_some_and(Value::is_string) {
        return Some("you must provide a model parameter".into());
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Some("Missing required parameter: 'messages'.".into());
    }
    None
}

/// The text of the last message: what the default reply echoes.
pub(crate) fn last_text(body: &Value) -> String {
    let Some(content) = body
        .pointer("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
    else {
        return String::new();
    };
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Whether the client asked for the final usage chunk.
pub(crate) fn wants_usage(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true))
}

struct Chunk<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    usage: bool,
}

impl Chunk<'_> {
    fn frame(&self, delta: Value, finish_reason: Value) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if self.usage {
            chunk["usage"] = Value::Null;
        }
        data(&chunk)
    }
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

pub(crate) fn stream(id: &str, created: u64, model: &str, usage: bool, plan: &Plan) -> Frames {
    let chunk = Chunk {
        id,
        created,
        model,
        usage,
    };
    let opening_content = if plan.full_text().is_empty() && !plan.calls.is_empty() {
        Value::Null
    } else {
        json!("")
    };
    let opening = chunk.frame(
        json!({"role": "assistant", "content": opening_content, "refusal": null}),
        Value::Null,
    );
    let text = plan
        .text
        .iter()
        .filter(|piece| !piece.is_empty())
        .map(|piece| chunk.frame(json!({"content": piece}), Value::Null))
        .collect();
    let mut rest = Vec::new();
    for (index, call) in plan.calls.iter().enumerate() {
        rest.push(chunk.frame(
            json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for fragment in &call.fragments {
            rest.push(chunk.frame(
                json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                Value::Null,
            ));
        }
    }
    rest.push(chunk.frame(json!({}), json!(finish_reason(plan))));
    if usage {
        rest.push(data(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null, "choices": [], "usage": usage_object(plan),
        })));
    }
    rest.push("data: [DONE]\n\n".to_owned());
    Frames {
        opening,
        text,
        rest,
    }
}

/// What a provider sends when it fails after the stream began.
pub(crate) fn error_frame(message: &str) -> String {
    data(
        &json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
    )
}

pub(crate) fn whole(id: &str, created: u64, model: &str, plan: &Plan) -> Value {
    let text = plan.full_text();
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !plan.calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = plan.calls.iter().map(tool_call).collect();
    }
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(plan)}],
        "usage": usage_object(plan),
    })
}

fn tool_call(call: &PlannedCall) -> Value {
    json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": Plan::arguments(call)}})
}

fn finish_reason(plan: &Plan) -> &'static str {
    if plan.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    }
}

fn usage_object(plan: &Plan) -> Value {
    json!({
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
    })
}
