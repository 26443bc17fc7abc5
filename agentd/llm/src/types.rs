//! What agentd asks and what it gets back, the same for every provider.

use serde::{Deserialize, Serialize};

// The provider settings are the owner's (carapace-owner defines the settings file, which the
// builder checks too); the client takes them as they are.
pub use carapace_owner::{ApiKind, LlmProvider as ProviderSettings};

/// A tool the model may call: its name, what it does, and a JSON schema of its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A call the model asked for. `id` is the provider's, echoed back with the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// An image the model is shown beside a message's text. Never serialised: a history on disk
/// keeps the words of a turn, not its images.
#[derive(Clone, PartialEq)]
pub struct Image {
    /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`: what both APIs take.
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}, {} bytes)", self.media_type, self.bytes.len())
    }
}

impl Image {
    /// The largest image both APIs take inline (Anthropic's limit; OpenAI's is 20 MB).
    pub const MAX_BYTES: usize = 5 * 1024 * 1024;

    /// An image to show the model, its type told by its first bytes; or why it cannot be one.
    pub fn new(bytes: Vec<u8>) -> Result<Image, String> {
        let media_type = if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            "image/jpeg"
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            "image/gif"
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            "image/webp"
        } else {
            return Err("it is not a JPEG, PNG, GIF or WebP image".into());
        };
        if bytes.len() > Image::MAX_BYTES {
            return Err(format!(
                "it is {} bytes, more than the {} a model API takes",
                bytes.len(),
                Image::MAX_BYTES
            ));
        }
        Ok(Image {
            media_type: media_type.into(),
            bytes,
        })
    }

    /// `data:<media type>;base64,<bytes>`: how OpenAI's API takes an image inline.
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.media_type, self.base64())
    }

    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }
}

/// One turn of the conversation as sent to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    User {
        text: String,
        /// Shown with this request only; a stored history never holds them.
        #[serde(skip)]
        images: Vec<Image>,
    },
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
}

impl Message {
    /// The sender's words, with no image.
    pub fn user(text: impl Into<String>) -> Message {
        Message::User {
            text: text.into(),
            images: Vec::new(),
        }
    }
}

/// One request: the system prompt, the conversation so far, and the tools on offer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The model's answer, assembled from the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// Which provider answered (its index in the settings).
    pub provider: usize,
    /// The request body's size in bytes (the bench reports it).
    pub bytes_sent: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_known_by_its_first_bytes_and_refused_when_too_big_or_unknown() {
        let jpeg = Image::new(vec![0xff, 0xd8, 0xff, 0xe0]).unwrap();
        assert_eq!(jpeg.media_type, "image/jpeg");
        assert_eq!(jpeg.data_url(), "data:image/jpeg;base64,/9j/4A==");
        let png = Image::new(b"\x89PNG\r\n\x1a\n....".to_vec()).unwrap();
        assert_eq!(png.media_type, "image/png");
        assert_eq!(
            Image::new(b"GIF89a..".to_vec()).unwrap().media_type,
            "image/gif"
        );
        let webp = Image::new(b"RIFF\x10\0\0\0WEBPVP8 ".to_vec()).unwrap();
        assert_eq!(webp.media_type, "image/webp");
        let unknown = Image::new(b"%PDF-1.7".to_vec()).unwrap_err();
        assert!(
            unknown.contains("not a JPEG, PNG, GIF or WebP"),
            "{unknown}"
        );
        let mut big = vec![0xff, 0xd8, 0xff];
        big.resize(Image::MAX_BYTES + 1, 0);
        let too_big = Image::new(big).unwrap_err();
        assert!(
            too_big.starts_with("it is 5242881 bytes, more than"),
            "{too_big}"
        );
    }
}
