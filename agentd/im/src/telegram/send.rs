//! Replies: text through sendMessage (cut to Telegram's length limit), voice and photos as
//! multipart uploads through sendVoice and sendPhoto; a person's message taken out of the
//! chat through deleteMessage.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::call::Payload;
use super::{CALL_TIMEOUT, CHANNEL, TRANSFER_TIMEOUT, Telegram};
use crate::split::{split_text, utf16_len};
use crate::{Error, Outgoing};

/// A text message holds at most this many UTF-16 code units.
const TEXT_LIMIT: usize = 4096;
/// A photo's caption holds at most this many.
const CAPTION_LIMIT: usize = 1024;

impl Telegram {
    pub(super) async fn send_message(&self, chat: &str, message: &Outgoing) -> Result<(), Error> {
        match message {
            Outgoing::Text(text) => self.send_text(chat, text).await,
            // One row of buttons under the question (which must fit one message).
            Outgoing::Choice { text, buttons } => {
                let row: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({"text": b.label, "callback_data": b.data}))
                    .collect();
                let body = json!({
                    "chat_id": chat_id(chat),
                    "text": text,
                    "reply_markup": {"inline_keyboard": [row]},
                });
                self.call::<Value>("sendMessage", Payload::Json(body), CALL_TIMEOUT)
                    .await
                    .map(|_| ())
            }
            Outgoing::Delete { message_id } => {
                let message_id: i64 = message_id.parse().map_err(|_| Error::Rejected {
                    channel: CHANNEL,
                    detail: format!("deleteMessage: {message_id:?} is not a message id"),
                })?;
                let body = json!({"chat_id": chat_id(chat), "message_id": message_id});
                self.call::<Value>("deleteMessage", Payload::Json(body), CALL_TIMEOUT)
                    .await
                    .map(|_| ())
            }
            Outgoing::Voice(ogg) => {
                let part = file_part(ogg, "voice.ogg", "audio/ogg")?;
                let form = Form::new()
                    .text("chat_id", chat.to_string())
                    .part("voice", part);
                self.upload("sendVoice", form).await
            }
            Outgoing::Photo { bytes, caption } => {
                let (name, mime) = if bytes.starts_with(b"\x89PNG") {
                    ("photo.png", "image/png")
                } else {
                    ("photo.jpg", "image/jpeg")
                };
                let mut form = Form::new()
                    .text("chat_id", chat.to_string())
                    .part("photo", file_part(bytes, name, mime)?);
                // A caption over the limit would make Telegram refuse the photo; it follows
                // as text instead.
                let fits = utf16_len(caption) <= CAPTION_LIMIT;
                if fits && !caption.is_empty() {
                    form = form.text("caption", caption.clone());
                }
                self.upload("sendPhoto", form).await?;
                match fits {
                    true => Ok(()),
                    false => self.send_text(chat, caption).await,
                }
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
                detail: "sendMessage: the text is empty".into(),
            });
        }
        for piece in pieces {
            let body = json!({"chat_id": chat_id(chat), "text": piece});
            self.call::<Value>("sendMessage", Payload::Json(body), CALL_TIMEOUT)
                .await?;
        }
        Ok(())
    }

    async fn upload(&self, method: &'static str, form: Form) -> Result<(), Error> {
        self.call::<Value>(method, Payload::Multipart(form), TRANSFER_TIMEOUT)
            .await
            .map(|_| ())
    }
}

fn file_part(bytes: &[u8], name: &'static str, mime: &str) -> Result<Part, Error> {
    Part::bytes(bytes.to_vec())
        .file_name(name)
        .mime_str(mime)
        .map_err(|error| Error::Protocol {
            channel: CHANNEL,
            detail: format!("{name}: {error}"),
        })
}

/// Chat ids are integers; a public chat may be named "@channel" instead.
fn chat_id(chat: &str) -> Value {
    chat.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat))
}
