//! A `tools/call` result as text for the model: text items joined, every other kind named
//! with its type and size ("[image/png, 3 KB]") so that the model knows something came that
//! it cannot see; `structuredContent` only when there is no content (servers that give both
//! repeat it as text, as the specification asks).

use serde_json::Value;

/// What a tool call gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub text: String,
    /// The tool ran and failed (`isError`); `text` says why.
    pub is_error: bool,
}

pub(crate) fn outcome(result: &Value) -> Outcome {
    let items = result.get("content").and_then(Value::as_array);
    let mut text: Vec<String> = items.into_iter().flatten().map(item_text).collect();
    if text.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        text.push(structured.to_string());
    }
    Outcome {
        text: text.join("\n"),
        is_error: result.get("isError").and_then(Value::as_bool) == Some(true),
    }
}

fn item_text(item: &Value) -> String {
    let field = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or_default();
    match field("type") {
        "text" => field("text").to_owned(),
        kind @ ("image" | "audio") => {
            let mime = item.get("mimeType").and_then(Value::as_str).unwrap_or(kind);
            format!("[{mime}, {}]", size(field("data")))
        }
        "resource_link" => format!("[link: {}]", field("uri")),
        "resource" => {
            let resource = item.get("resource").unwrap_or(&Value::Null);
            let inner = |name: &str| resource.get(name).and_then(Value::as_str);
            match (inner("text"), inner("blob")) {
                (Some(text), _) => text.to_owned(),
                (None, blob) => {
                    let mime = inner("mimeType").unwrap_or("resource");
                    let uri = inner("uri").unwrap_or_default();
                    format!("[{mime} {uri}, {}]", size(blob.unwrap_or_default()))
                }
            }
        }
        other => format!("[{other} content]"),
    }
}

/// The decoded size of base64 `data`, in words.
fn size(data: &str) -> String {
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count();
    let bytes = (data.len() / 4 * 3).saturating_sub(padding);
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_joined_and_other_kinds_are_named() {
        let png = "A".repeat(4096); // 3072 bytes
        let result = json!({"content": [
            {"type": "text", "text": "Chart of last week:"},
            {"type": "image", "data": png, "mimeType": "image/png"},
            {"type": "audio", "data": "AAA=", "mimeType": "audio/wav"},
            {"type": "resource_link", "uri": "file:///r/a.txt", "name": "a.txt"},
            {"type": "resource", "resource": {"uri": "file:///r/b.txt", "text": "inside b"}},
            {"type": "resource", "resource": {"uri": "file:///r/c.bin", "mimeType": "application/zip", "blob": "AAAA"}},
            {"type": "hologram"},
        ]});
        assert_eq!(
            outcome(&result),
            Outcome {
                text: "Chart of last week:\n[image/png, 3 KB]\n[audio/wav, 2 bytes]\n[link: file:///r/a.txt]\ninside b\n[application/zip file:///r/c.bin, 3 bytes]\n[hologram content]".into(),
                is_error: false,
            }
        );
    }

    #[test]
    fn errors_and_structured_content() {
        let failed =
            json!({"content": [{"type": "text", "text": "rate limited"}], "isError": true});
        assert_eq!(
            outcome(&failed),
            Outcome {
                text: "rate limited".into(),
                is_error: true
            }
        );
        let structured = json!({"content": [], "structuredContent": {"t": 22.5}});
        assert_eq!(outcome(&structured).text, r#"{"t":22.5}"#);
        let both = json!({"content": [{"type": "text", "text": "22.5"}], "structuredContent": {"t": 22.5}});
        assert_eq!(outcome(&both).text, "22.5");
        assert_eq!(outcome(&json!({})).text, "");
    }
}
