//! The Anthropic Messages wire format as the fake speaks it: the `x-api-key` and
//! `anthropic-version` checks, `{type:"error"}` bodies, the named SSE events from
//! `message_start` to `message_stop`, and the whole `message` object for clients that do not
//! stream.

use hyper::HeaderMap;
use serde_json::{Value, json};

use super::Frames;
use super::script::{Plan, PlannedCall};

pub(crate) fn key_matches(headers: &HeaderMap, key: &str) -> bool {
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        == Some(key)
}

pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

pub(crate) fn error_body(status: u16, message: &str, request_id: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    })
}

/// The 401 the real API gives for a missing or wrong key.
pub(crate) fn unauthorized(headers: &HeaderMap, request_id: &str) -> Value {
    let message = if headers.contains_key("x-api-key") {
        "invalid x-api-key"
    } else {
        "x-api-key header is required"
    };
    error_body(401, message, request_id)
}

/// The API's checks that a client can get wrong: the version header, model, max_tokens,
/// and messages.
pub(crate) fn malformed(headers: &HeaderMap, body: &Value) -> Option<String> {
    if !headers.contains_key("anthropic-version") {
        return Some("anthropic-version: header is required".into());
    }
    if !body.get("model").is_some_and(Value::is_string) {
        return Some("model: Field required".into());
    }
    if !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Some("max_tokens: Field required".into());
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Some("messages: Field required".into());
    }
    None
}

/// The text of the last message (its text blocks, or its tool results' content): what the
/// default reply echoes.
pub(crate) fn last_text(body: &Value) -> String {
    let Some(content) = body
        .pointer("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
    else {
        return String::new();
    };
    text_of(content)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block.get("type").and_then(Value::as_str) {
                Some("text") => block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                Some("tool_result") => block.get("content").map(text_of).unwrap_or_default(),
                _ => String::new(),
            })
            .collect(),
        _ => String::new(),
    }
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub(crate) fn stream(id: &str, model: &str, plan: &Plan) -> Frames {
    let has_text = !plan.full_text().is_empty() || plan.calls.is_empty();
    let mut opening = event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": plan.input_tokens, "output_tokens": 1},
        }}),
    );
    if has_text {
        opening.push_str(&event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
    }
    opening.push_str(&event("ping", &json!({"type": "ping"})));
    let text = if has_text {
        plan.text
            .iter()
            .map(|piece| {
                event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": piece}}),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut rest = Vec::new();
    let first_tool = usize::from(has_text);
    if has_text {
        rest.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
    }
    for (offset, call) in plan.calls.iter().enumerate() {
        let index = first_tool + offset;
        rest.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
        ));
        for fragment in std::iter::once(&String::new()).chain(&call.fragments) {
            rest.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            ));
        }
        rest.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    rest.push(event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(plan), "stop_sequence": null},
                "usage": {"output_tokens": plan.output_tokens}}),
    ));
    rest.push(event("message_stop", &json!({"type": "message_stop"})));
    Frames {
        opening,
        text,
        rest,
    }
}

/// What the API sends when it fails after the stream began (it is overloaded, usually).
pub(crate) fn error_frame(message: &str) -> String {
    event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
    )
}

pub(crate) fn whole(id: &str, model: &str, plan: &Plan) -> Value {
    let text = plan.full_text();
    let mut content: Vec<Value> = Vec::new();
    if !text.is_empty() || plan.calls.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(plan.calls.iter().map(tool_use));
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(plan), "stop_sequence": null,
        "usage": {"input_tokens": plan.input_tokens, "output_tokens": plan.output_tokens},
    })
}

fn tool_use(call: &PlannedCall) -> Value {
    let input: Value = serde_json::from_str(&Plan::arguments(call)).unwrap_or(Value::Null);
    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
}

fn stop_reason(plan: &Plan) -> &'static str {
    if plan.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}
