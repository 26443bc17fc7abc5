//! The local inference engine's API, over plain http to loopback (infer/src/api.rs serves it):
//! OpenAI's `POST /v1/embeddings` for memories (memory.rs), and for voice notes the engine's
//! `POST /v1/audio/voice-activity` (is anyone speaking?), OpenAI's `POST
//! /v1/audio/transcriptions` and, for the spoken reply, `POST /v1/audio/speech`; for photos
//! the engine's `POST /v1/images/ocr` and, where a model pack can describe pictures,
//! `POST /v1/images/describe`; and the owner's model packs, `POST /v1/packs` (a pack's tar,
//! streamed as it downloads) and `DELETE /v1/packs/{id}`. Nothing sent here leaves the box,
//! and no LLM provider is involved.

use std::time::Duration;

use board_support::local_inference::{
    MEMORY_EMBEDDING_MODEL, OCR_MODEL, VOICE_ACTIVITY_MODEL, VOICE_MODEL,
};
use carapace_http::{Client, Url};
use serde::Deserialize;
use serde_json::json;

use crate::error::Error;

/// Set only by tests (an engine on a free port); read once at start (config.rs).
pub const URL_ENV: &str = "LOCAL_INFERENCE_URL";
/// One request's limit. The box's CPU may be slow and the engine loads the model on first use
/// (under emulation, as in the image tests, everything is ~30 times slower than native).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The limit for the work on a voice note or a photo (voice activity, transcription, speech,
/// OCR): a long note on a slow CPU (and the model's first load) takes minutes, not seconds.
/// Floating point is what emulation slows most: under TCG on a 2.4 GHz host Whisper tiny's
/// encoder alone took 7 minutes for one 30-second window (0.84 s natively on one core), a
/// whole 3-second note (voice activity, words, spoken answer) 11 minutes in the image tests,
/// where 5 minutes had been too short. A stuck engine is rare (it answers or fails); a note
/// dropped on a slow box is not.
pub const AUDIO_TIMEOUT: Duration = Duration::from_secs(1200);
/// A model pack's whole download and check: gigabytes over a slow link take long.
pub const PACK_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// The longest description of a photo, in tokens: a few sentences for the model.
const DESCRIPTION_TOKENS: usize = 96;
/// How much of an error body that is not an OpenAI error object is quoted.
const QUOTED_BYTES: usize = 300;

/// One of the engine's models, as `GET /v1/models` lists it.
#[derive(Debug, Deserialize)]
pub struct EngineModel {
    pub id: String,
    /// `embeddings`, `voice_activity`, `transcription`, `speech`, `ocr`, `image_description`.
    pub capability: String,
    pub loaded: bool,
    pub device: String,
    pub device_reason: String,
    pub last_error: Option<String>,
    /// `image`, `image_pack`, or `added_pack` (the owner's, which `/remove_model` removes).
    #[serde(default)]
    pub source: String,
    /// A pack's version.
    #[serde(default)]
    pub version: Option<String>,
}

/// A pack the engine took (`POST /v1/packs`).
#[derive(Debug, Deserialize)]
pub struct AddedPack {
    pub id: String,
    pub version: String,
    pub capability: String,
    pub signed_by: String,
    /// The version it replaced.
    pub replaced: Option<String>,
}

/// A voice note's words and the language they were heard in, by name as OpenAI's API gives it
/// ("english", "german").
#[derive(Debug, Clone, Deserialize)]
pub struct Heard {
    pub text: String,
    pub language: String,
}

/// The engine's API, with a client of its own: plain http, no roots, no proxy.
#[derive(Clone)]
pub struct LocalInference {
    base_url: Url,
    client: Client,
}

impl LocalInference {
    /// `base_url` is the engine's address (`http://127.0.0.1:8089`, config.rs checks it).
    pub fn new(base_url: Url) -> Result<LocalInference, Error> {
        Ok(LocalInference {
            base_url,
            client: carapace_http::loopback_client(TIMEOUT)?,
        })
    }

    /// The engine's address as errors name it: `http://127.0.0.1:8089`.
    pub fn address(&self) -> &str {
        self.base_url.as_str().trim_end_matches('/')
    }

    /// One vector per text, in the texts' order (unit length: the engine normalises them).
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({
            "model": MEMORY_EMBEDDING_MODEL,
            "input": texts,
            "encoding_format": "float",
        });
        let request = self
            .client
            .post(format!("{}/v1/embeddings", self.address()))
            .json(&body);
        let bytes = self.call(request).await?;
        vectors(&bytes, texts.len()).map_err(|reason| Error::InferenceAnswer { reason })
    }

    /// How many seconds of a voice note (Ogg Opus or WAV) hold speech, by the engine's
    /// voice-activity model: 0 for silence or noise, which is not worth transcribing.
    pub async fn speech_seconds(&self, audio: Vec<u8>) -> Result<f64, Error> {
        let request = self
            .client
            .post(format!(
                "{}/v1/audio/voice-activity?model={VOICE_ACTIVITY_MODEL}",
                self.address()
            ))
            .timeout(AUDIO_TIMEOUT)
            .body(audio);
        let bytes = self.call(request).await?;
        #[derive(Deserialize)]
        struct Activity {
            segments: Vec<Segment>,
        }
        #[derive(Deserialize)]
        struct Segment {
            start: f64,
            end: f64,
        }
        serde_json::from_slice::<Activity>(&bytes)
            .map(|activity| {
                activity
                    .segments
                    .iter()
                    .map(|segment| (segment.end - segment.start).max(0.0))
                    .sum()
            })
            .map_err(|error| Error::InferenceAnswer {
                reason: format!("not a voice-activity answer ({error})"),
            })
    }

    /// The words spoken in a voice note (Ogg Opus as the IM apps send it, or WAV), and their
    /// language, heard by the engine's speech model on the box (the first of SPEECH_MODELS the
    /// image carries): the audio goes nowhere else.
    pub async fn transcribe(&self, audio: Vec<u8>) -> Result<Heard, Error> {
        let form = reqwest::multipart::Form::new()
            .text("response_format", "verbose_json")
            .part(
                "file",
                reqwest::multipart::Part::bytes(audio).file_name("voice-note.ogg"),
            );
        let request = self
            .client
            .post(format!("{}/v1/audio/transcriptions", self.address()))
            .timeout(AUDIO_TIMEOUT)
            .multipart(form);
        let bytes = self.call(request).await?;
        serde_json::from_slice::<Heard>(&bytes).map_err(|error| Error::InferenceAnswer {
            reason: format!("not a transcription ({error})"),
        })
    }

    /// The text in a photo (PNG or JPEG), read line by line by the engine's OCR on the box;
    /// empty when it found none.
    pub async fn read_text(&self, image: Vec<u8>) -> Result<String, Error> {
        let form = reqwest::multipart::Form::new()
            .text("model", OCR_MODEL)
            .part(
                "file",
                reqwest::multipart::Part::bytes(image).file_name("photo.jpg"),
            );
        let request = self
            .client
            .post(format!("{}/v1/images/ocr", self.address()))
            .timeout(AUDIO_TIMEOUT)
            .multipart(form);
        let bytes = self.call(request).await?;
        #[derive(Deserialize)]
        struct Read {
            text: String,
        }
        serde_json::from_slice::<Read>(&bytes)
            .map(|read| read.text)
            .map_err(|error| Error::InferenceAnswer {
                reason: format!("not an OCR answer ({error})"),
            })
    }

    /// The engine's models: what each does, whether it is loaded, and where it runs and why.
    pub async fn models(&self) -> Result<Vec<EngineModel>, Error> {
        let request = self.client.get(format!("{}/v1/models", self.address()));
        let bytes = self.call(request).await?;
        #[derive(Deserialize)]
        struct List {
            data: Vec<EngineModel>,
        }
        serde_json::from_slice::<List>(&bytes)
            .map(|list| list.data)
            .map_err(|error| Error::InferenceAnswer {
                reason: format!("not a list of models ({error})"),
            })
    }

    /// What the engine's image description model (from a model pack) sees in a photo; None
    /// when this box has no such model, which is the default.
    pub async fn describe(&self, image: Vec<u8>) -> Result<Option<String>, Error> {
        let form = reqwest::multipart::Form::new()
            .text("max_tokens", DESCRIPTION_TOKENS.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(image).file_name("photo.jpg"),
            );
        let request = self
            .client
            .post(format!("{}/v1/images/describe", self.address()))
            .timeout(AUDIO_TIMEOUT)
            .multipart(form);
        let bytes = match self.call(request).await {
            Ok(bytes) => bytes,
            Err(Error::InferenceRefused { status: 404, .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        #[derive(Deserialize)]
        struct Described {
            text: String,
        }
        let described: Described =
            serde_json::from_slice(&bytes).map_err(|error| Error::InferenceAnswer {
                reason: format!("not an image description ({error})"),
            })?;
        let text = described.text.trim();
        Ok((!text.is_empty()).then(|| text.to_string()))
    }

    /// `text` spoken by the engine's voice, as an Ogg Opus voice note.
    pub async fn speak(&self, text: &str) -> Result<Vec<u8>, Error> {
        let body = json!({
            "model": VOICE_MODEL,
            "input": text,
            "voice": "alloy",
            "response_format": "opus",
        });
        let request = self
            .client
            .post(format!("{}/v1/audio/speech", self.address()))
            .timeout(AUDIO_TIMEOUT)
            .json(&body);
        let audio = self.call(request).await?;
        if !audio.starts_with(b"OggS") {
            return Err(Error::InferenceAnswer {
                reason: "the speech is not Ogg Opus".into(),
            });
        }
        Ok(audio)
    }

    /// Hands the engine a model pack's tar, `body` (streamed: a download's body goes through
    /// as it arrives); the engine checks its signature and files before it offers the model.
    /// No time limit of its own: `body` ends or fails with its download.
    pub async fn add_pack(&self, body: reqwest::Body) -> Result<AddedPack, Error> {
        let request = self
            .client
            .post(format!("{}/v1/packs", self.address()))
            .timeout(PACK_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(body);
        let bytes = self.call(request).await?;
        serde_json::from_slice(&bytes).map_err(|error| Error::InferenceAnswer {
            reason: format!("not a model pack ({error})"),
        })
    }

    /// Removes model `id`, a pack the owner added; returns its version.
    pub async fn remove_pack(&self, id: &str) -> Result<String, Error> {
        let mut url = Url::parse(&format!("{}/v1/packs/", self.address())).map_err(|error| {
            Error::InferenceAnswer {
                reason: format!("the engine's address: {error}"),
            }
        })?;
        url.path_segments_mut()
            .map_err(|()| Error::InferenceAnswer {
                reason: "the engine's address takes no path".into(),
            })?
            .pop_if_empty()
            .push(id);
        let bytes = self.call(self.client.delete(url)).await?;
        #[derive(Deserialize)]
        struct Removed {
            version: String,
        }
        serde_json::from_slice::<Removed>(&bytes)
            .map(|removed| removed.version)
            .map_err(|error| Error::InferenceAnswer {
                reason: format!("not a removed pack ({error})"),
            })
    }

    /// Sends `request` to the engine and returns the body of a successful answer; a refusal
    /// carries the engine's own message.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, Error> {
        let unreachable = |error: reqwest::Error| Error::InferenceUnreachable {
            url: self.address().to_string(),
            reason: describe(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(Error::InferenceRefused {
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        Ok(bytes.to_vec())
    }
}

/// Why a request got no answer, in a few words: the innermost cause ("Connection refused (os
/// error 111)"), since reqwest's own text is "error sending request for url (...)".
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_string();
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The message of an OpenAI error object, or the start of whatever else the body holds.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorObject {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: String,
    }
    if let Ok(object) = serde_json::from_slice::<ErrorObject>(body) {
        return object.error.message;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BYTES)]);
    match text.trim() {
        "" => "an empty body".to_string(),
        text => format!("{text:?}"),
    }
}

/// The vectors of an embeddings answer for `expected` texts, ordered by their `index`.
fn vectors(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, String> {
    #[derive(Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|error| format!("not a list of float embeddings ({error})"))?;
    if answer.data.len() != expected {
        return Err(format!(
            "{} embeddings for {expected} texts",
            answer.data.len()
        ));
    }
    let mut ordered: Vec<Option<Vec<f32>>> = vec![None; expected];
    for item in answer.data {
        match ordered.get_mut(item.index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            Some(Some(_)) => return Err(format!("index {} appears twice", item.index)),
            None => return Err(format!("index {} is out of range", item.index)),
        }
    }
    // Every slot is filled: as many items as slots, none twice.
    let ordered: Vec<Vec<f32>> = ordered.into_iter().flatten().collect();
    let dimensions = ordered[0].len();
    if dimensions == 0 || ordered.iter().any(|v| v.len() != dimensions) {
        return Err("the vectors are empty or of different lengths".into());
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_in_the_order_of_the_texts() {
        let body = br#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.0,1.0]},
            {"object":"embedding","index":0,"embedding":[1.0,0.0]}],
            "model":"all-minilm-l6-v2","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(vectors(body, 2).unwrap(), [vec![1.0, 0.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn a_malformed_answer_says_what_is_wrong() {
        let check = |body: &str, expected: usize, wanted: &str| {
            let reason = vectors(body.as_bytes(), expected).unwrap_err();
            assert!(reason.contains(wanted), "{body}: {reason}");
        };
        check("<html>", 1, "not a list of float embeddings");
        check(
            r#"{"data":[{"index":0,"embedding":"AAAA"}]}"#,
            1,
            "not a list",
        );
        check(r#"{"data":[]}"#, 1, "0 embeddings for 1 texts");
        check(
            r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
            2,
            "index 0 appears twice",
        );
        check(
            r#"{"data":[{"index":3,"embedding":[1]}]}"#,
            1,
            "index 3 is out",
        );
        check(
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1,2]}]}"#,
            2,
            "different lengths",
        );
        check(r#"{"data":[{"index":0,"embedding":[]}]}"#, 1, "empty");
    }

    #[test]
    fn the_engines_error_message_is_quoted() {
        let body = br#"{"error":{"message":"the model all-minilm-l6-v2 is not on this box","type":"invalid_request_error","code":"model_not_found"}}"#;
        assert_eq!(
            error_message(body),
            "the model all-minilm-l6-v2 is not on this box"
        );
        assert_eq!(error_message(b"Bad Gateway\n"), "\"Bad Gateway\"");
        assert_eq!(error_message(b""), "an empty body");
        assert!(error_message(&[b'x'; 1000]).len() < QUOTED_BYTES + 10);
    }

    #[tokio::test]
    async fn a_closed_port_is_named_with_the_address_and_the_cause() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        // Built with no process-wide TLS provider installed: must not panic.
        let embeddings = LocalInference::new(url).unwrap();
        assert!(embeddings.embed(&[]).await.unwrap().is_empty());
        let error = embeddings.embed(&["hello"]).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "the local inference engine is not answering at http://127.0.0.1:{port}: "
            )),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
