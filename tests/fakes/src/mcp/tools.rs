//! The fake MCP server's tools: `tools/list` in two pages and `tools/call`, with results of
//! every shape a client must handle (text, an image, a tool error, a JSON-RPC error, a big
//! answer, a slow one) and one tool whose name the LLM APIs would refuse.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The cursor of the second page.
const PAGE_2: &str = "page-2";

/// A JSON-RPC error: code and message.
pub(crate) type RpcError = (i64, String);

/// What a tool call gives, and how long the server takes before answering.
pub(crate) struct Called {
    pub result: Value,
    pub delay: Duration,
}

/// The tools/list result for `params` (its cursor).
pub(crate) fn list(params: &Value) -> Result<Value, RpcError> {
    match params.get("cursor").and_then(Value::as_str) {
        None => Ok(json!({"tools": [add(), lookup_order()], "nextCursor": PAGE_2})),
        Some(PAGE_2) => Ok(json!({"tools": [
            tool("snapshot", "A chart of last week's sales, as an image.", json!({})),
            tool("broken_report", "The monthly report (its service is down).", json!({})),
            tool("dump", "Returns `bytes` bytes of text.", json!({"bytes": {"type": "integer"}})),
            tool("wait", "Answers after `ms` milliseconds.", json!({"ms": {"type": "integer"}})),
            tool("bad name!", "A name no LLM API takes.", json!({})),
        ]})),
        Some(other) => Err((-32602, format!("Invalid cursor: {other}"))),
    }
}

fn tool(name: &str, description: &str, properties: Value) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    })
}

/// Long descriptions and schema noise, as real servers generated from code write them.
fn add() -> Value {
    let number = |which: &str| {
        json!({
            "type": "number",
            "title": which.to_uppercase(),
            "description": format!("The {which} addend. Any JSON number: integers and decimals alike, negative ones too; \
                very large values lose precision as IEEE 754 doubles do."),
            "examples": [1, 2.5],
        })
    };
    json!({
        "name": "add",
        "title": "Add two numbers",
        "annotations": {"readOnlyHint": true, "openWorldHint": false},
        "description": "Adds two numbers and returns their sum as text. Use it whenever exact arithmetic matters \
            more than a guess: prices, quantities, dates counted in days. It does not round, format or \
            convert units; give it plain numbers. ".repeat(3),
        "inputSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "AddArguments",
            "type": "object",
            "properties": {"a": number("first"), "b": number("second")},
            "required": ["a", "b"],
            "additionalProperties": false,
        },
    })
}

fn lookup_order() -> Value {
    json!({
        "name": "lookup_order",
        "annotations": {"readOnlyHint": true},
        "description": "Looks up an order of the shop by its id and tells its items, its state (paid, packed, \
            shipped, delivered, returned) and the date of its last change. Order ids look like A-1042. ".repeat(3),
        "inputSchema": {
            "type": "object",
            "properties": {"id": {
                "type": "string",
                "description": "The order's id, as printed on the receipt and in the confirmation mail (A- then digits).",
                "examples": ["A-1042"],
            }},
            "required": ["id"],
        },
    })
}

/// The tools/call result for `params` (name and arguments).
pub(crate) fn call(params: &Value) -> Result<Called, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
    let invalid = |what: &str| (-32602, format!("Invalid arguments for tool {name}: {what}"));
    let now = |result: Value| Called {
        result,
        delay: Duration::ZERO,
    };
    match name {
        "add" => {
            let (a, b) = (&arguments["a"], &arguments["b"]);
            let sum = match (a.as_i64(), b.as_i64(), a.as_f64(), b.as_f64()) {
                (Some(a), Some(b), _, _) => a.saturating_add(b).to_string(),
                (_, _, Some(a), Some(b)) => (a + b).to_string(),
                _ => return Err(invalid("a and b must be numbers")),
            };
            Ok(now(text(&sum)))
        }
        "lookup_order" => {
            let id = arguments["id"]
                .as_str()
                .ok_or_else(|| invalid("id must be a string"))?;
            Ok(now(text(&format!(
                "Order {id}: 2 items, shipped on 2026-03-02"
            ))))
        }
        "snapshot" => Ok(now(json!({"content": [
            {"type": "text", "text": "Sales last week:"},
            {"type": "image", "mimeType": "image/png", "data": STANDARD.encode([0u8; 3000])},
        ]}))),
        "broken_report" => Ok(now(json!({
            "content": [{"type": "text", "text": "the report service is down"}],
            "isError": true,
        }))),
        "dump" => {
            let bytes = arguments["bytes"]
                .as_u64()
                .ok_or_else(|| invalid("bytes must be a count"))?;
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX).min(16 << 20);
            Ok(now(text(&"x".repeat(bytes))))
        }
        "wait" => {
            let ms = arguments["ms"]
                .as_u64()
                .ok_or_else(|| invalid("ms must be a count"))?;
            Ok(Called {
                result: text("waited"),
                delay: Duration::from_millis(ms),
            })
        }
        _ => Err((-32602, format!("Unknown tool: {name}"))),
    }
}

fn text(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}
