//! Images in a request, checked as the real APIs check them: inline base64 that decodes, of a
//! type both take, whose bytes are what the request says they are.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

const TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The type the bytes are, by their first bytes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The decoded image, or the API's complaint about it.
pub(crate) fn decode(media_type: &str, data: &str) -> Result<Vec<u8>, String> {
    if !TYPES.contains(&media_type) {
        return Err(format!(
            "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp', not {media_type:?}"
        ));
    }
    let bytes = STANDARD
        .decode(data)
        .map_err(|_| "Invalid base64 image data.".to_string())?;
    match sniff(&bytes) {
        Some(found) if found == media_type => Ok(bytes),
        _ => Err(format!(
            "Image does not match the provided media type {media_type}"
        )),
    }
}

/// Every image in an OpenAI request's messages (`image_url` parts with a data URL).
pub(crate) fn openai(body: &Value) -> Vec<Result<Vec<u8>, String>> {
    parts(body, "image_url")
        .map(|part| {
            let url = part.pointer("/image_url/url").and_then(Value::as_str);
            let Some((media_type, data)) = url
                .and_then(|u| u.strip_prefix("data:"))
                .and_then(|u| u.split_once(";base64,"))
            else {
                return Err(
                    "Invalid image URL: expected a data URL (data:<type>;base64,...).".into(),
                );
            };
            decode(media_type, data)
        })
        .collect()
}

/// Every image in an Anthropic request's messages (`image` blocks with a base64 source).
pub(crate) fn anthropic(body: &Value) -> Vec<Result<Vec<u8>, String>> {
    parts(body, "image")
        .map(|block| {
            let text = |name: &str| {
                block
                    .pointer(&format!("/source/{name}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            if text("type") != "base64" {
                return Err("source.type: Input should be 'base64'".into());
            }
            decode(text("media_type"), text("data"))
        })
        .collect()
}

/// The content parts of type `kind` in every message.
fn parts<'a>(body: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(move |part| part.get("type").and_then(Value::as_str) == Some(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_are_decoded_and_a_wrong_type_is_refused_as_the_apis_do() {
        let jpeg = STANDARD.encode([0xff, 0xd8, 0xff, 0xe0]);
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{jpeg}")}},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{jpeg}")}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        ]}]});
        let found = openai(&body);
        assert_eq!(found[0], Ok(vec![0xff, 0xd8, 0xff, 0xe0]));
        assert_eq!(
            found[1],
            Err("Image does not match the provided media type image/png".into())
        );
        assert!(
            found[2]
                .as_ref()
                .unwrap_err()
                .starts_with("Invalid image URL")
        );
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": jpeg}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "%%"}},
        ]}]});
        let found = anthropic(&body);
        assert!(
            found[0]
                .as_ref()
                .unwrap_err()
                .starts_with("media_type: Input should be")
        );
        assert_eq!(found[1], Err("Invalid base64 image data.".into()));
    }
}
