//! Replies: text as `text` messages (cut into pieces the server takes), questions with buttons
//! as `interactive` cards, photos and voice as an
//! upload (`/im/v1/images`, `/im/v1/files` with file_type opus) and then an `image` or `audio`
//! message naming the key the upload gave. Feishu's image messages have no caption, so a
//! caption follows as text.
//!
//! The chat is a chat id (`oc_…`, what incoming messages name) or a user's open_id (`ou_…`).

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::{CALL_TIMEOUT, CHANNEL, Feishu, TRANSFER_TIMEOUT};
use crate::split::split_text;
use crate::{Error, Outgoing};

/// A text message's request may hold 150 KB. A piece of this many UTF-16 units stays under it
/// even when every unit is a control character escaped twice (`\\u0001` inside the content
/// string inside the body: about 12 bytes a unit).
const TEXT_LIMIT: usize = 10_000;

impl Feishu {
    pub(super) async fn send_message(&self, chat: &str, message: &Outgoing) -> Result<(), Error> {
        match message {
            Outgoing::Text(text) => self.send_text(chat, text).await,
            // An interactive card: the question, then its buttons in one row; a press comes
            // back over the long connection as a card action (incoming.rs).
            Outgoing::Choice { text, buttons } => {
                let actions: Vec<Value> = buttons
                    .iter()
                    .map(|b| {
                        json!({
                            "tag": "button",
                            "text": {"tag": "plain_text", "content": b.label},
                            "type": "default",
                            "value": {"data": b.data},
                        })
                    })
                    .collect();
                let card = json!({
                    "config": {"wide_screen_mode": true},
                    "elements": [
                        {"tag": "div", "text": {"tag": "plain_text", "content": text}},
                        {"tag": "action", "actions": actions},
                    ],
                });
                self.create(chat, "interactive", card).await
            }
            Outgoing::Photo { bytes, caption } => {
                let name = match bytes.starts_with(b"\x89PNG") {
                    true => "photo.png",
                    false => "photo.jpg",
                };
                let key = self
                    .upload("images", "image_key", || {
                        Form::new()
                            .text("image_type", "message")
                            .part("image", file_part(bytes, name))
                    })
                    .await?;
                self.create(chat, "image", json!({ "image_key": key }))
                    .await?;
                match caption.trim().is_empty() {
                    true => Ok(()),
                    false => self.send_text(chat, caption).await,
                }
            }
            Outgoing::Delete { .. } => Err(Error::Rejected {
                channel: CHANNEL,
                detail: "a Feishu bot can recall only its own messages, not a person's".into(),
            }),
            Outgoing::Voice(opus) => {
                let key = self
                    .upload("files", "file_key", || {
                        Form::new()
                            .text("file_type", "opus")
                            .text("file_name", "voice.opus")
                            .part("file", file_part(opus, "voice.opus"))
                    })
                    .await?;
                self.create(chat, "audio", json!({ "file_key": key })).await
            }
        }
    }

    /// Each piece is its own message. If a later piece fails, the earlier ones were sent
    /// already: a retry of the whole reply repeats them (at least once, like the inbox).
    async fn send_text(&self, chat: &str, text: &str) -> Result<(), Error> {
        let pieces = split_text(text, TEXT_LIMIT);
        if pieces.is_empty() {
            return Err(Error::Rejected {
                channel: CHANNEL,
                detail: "send: the text is empty".into(),
            });
        }
        for piece in pieces {
            self.create(chat, "text", json!({ "text": piece })).await?;
        }
        Ok(())
    }

    /// `POST /open-apis/im/v1/messages`: one message of `kind` with `content`.
    async fn create(&self, chat: &str, kind: &str, content: Value) -> Result<(), Error> {
        let id_type = match chat.starts_with("ou_") {
            true => "open_id",
            false => "chat_id",
        };
        let url = format!(
            "{}/open-apis/im/v1/messages?receive_id_type={id_type}",
            self.base
        );
        // The content is a JSON document in a string.
        let body = json!({"receive_id": chat, "msg_type": kind, "content": content.to_string()});
        self.call("send", CALL_TIMEOUT, || self.http.post(&url).json(&body))
            .await
            .map(|_| ())
    }

    /// Uploads the form `build` makes to `/open-apis/im/v1/{path}`; returns the `field` of the
    /// answer's data (the image or file key).
    async fn upload(
        &self,
        path: &str,
        field: &str,
        build: impl Fn() -> Form,
    ) -> Result<String, Error> {
        let url = format!("{}/open-apis/im/v1/{path}", self.base);
        let what = format!("upload to {path}");
        // A multipart form is used up by sending it: each attempt builds its own.
        let reply = self
            .call(&what, TRANSFER_TIMEOUT, || {
                self.http.post(&url).multipart(build())
            })
            .await?;
        reply["data"][field]
            .as_str()
            .filter(|key| !key.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol {
                channel: CHANNEL,
                detail: format!("{what}: the answer has no {field}"),
            })
    }
}

/// A file part typed as the SDK's uploads are (application/octet-stream).
fn file_part(bytes: &[u8], name: &'static str) -> Part {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Part::bytes(bytes.to_vec()).file_name(name).headers(headers)
}
