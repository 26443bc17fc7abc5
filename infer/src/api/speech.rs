//! `POST /v1/audio/speech`: OpenAI's text-to-speech request (`model`, `input`, `voice`,
//! `response_format`, `speed`), answered with the audio itself. The engine makes WAV, Ogg Opus
//! (what Telegram plays as a voice note) and raw PCM; OpenAI's other formats are refused with
//! the ones it makes, rather than sent in a format the client did not ask for.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, header};
use serde_json::Value;

use super::{ApiResponse, check_capability, engine_error, internal, invalid};
use crate::audio::encode_wav;
use crate::engine::{Capability, Engine};
use crate::ogg_opus::encode_ogg_opus;
use crate::speech::{MAX_SPEED, MIN_SPEED, Speech};

/// The longest text one request may carry, in characters (OpenAI's limit).
pub const MAX_SPEECH_INPUT_CHARS: usize = 4096;

/// The voice a request without a model gets.
const DEFAULT_VOICE_MODEL: &str = board_support::local_inference::VOICE_MODEL;

/// Each voice model and the name of its one speaker.
const VOICE_NAMES: [(&str, &str); 1] = [("piper-en-us-joe-medium", "joe")];

/// OpenAI's voices. Each voice model here has one speaker, so every one of OpenAI's names is
/// spoken by it: a client written for OpenAI works unchanged and gets this box's voice.
const OPENAI_VOICES: [&str; 13] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpeechFormat {
    Wav,
    /// Ogg Opus, mono, 48 kHz, 24 kbit/s: a voice note.
    Opus,
    /// Raw 16-bit little-endian mono samples at the voice's own rate (22,050 Hz for the pinned
    /// voice; OpenAI's pcm is 24 kHz), which the `x-sample-rate` header also states.
    Pcm,
}

#[derive(Debug)]
struct SpeechRequest {
    model: String,
    input: String,
    format: SpeechFormat,
    speed: f32,
}

fn parse_speech_request(body: &[u8]) -> Result<SpeechRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON ({e}); send {{\"model\": ..., \"input\": ..., \"voice\": ...}}"
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err("the body must be a JSON object with \"input\" and \"voice\"".into());
    };
    let model = match object.get("model") {
        None | Some(Value::Null) => DEFAULT_VOICE_MODEL.to_string(),
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err("\"model\" is not a string; GET /v1/models lists them".into()),
    };
    let input = match object.get("input") {
        Some(Value::String(input)) => input.clone(),
        _ => return Err("\"input\" is missing or not a string; send the text to speak".into()),
    };
    if input.trim().is_empty() {
        return Err("\"input\" is empty; send the text to speak".into());
    }
    let length = input.chars().count();
    if length > MAX_SPEECH_INPUT_CHARS {
        return Err(format!(
            "\"input\" has {length} characters; send at most {MAX_SPEECH_INPUT_CHARS} (split \
             longer text into several requests)"
        ));
    }
    let voice = match object.get("voice") {
        Some(Value::String(voice)) => voice.as_str(),
        // OpenAI's custom voices: {"id": "voice_1234"}.
        Some(Value::Object(custom)) => custom.get("id").and_then(Value::as_str).unwrap_or(""),
        _ => return Err("\"voice\" is missing; send the voice's name or one of OpenAI's".into()),
    };
    // Checked for the voice models only: any other model is refused for what it is, below.
    let own = VOICE_NAMES
        .iter()
        .find(|(name, _)| *name == model)
        .map(|&(_, voice)| voice);
    if let Some(own) = own
        && !(OPENAI_VOICES.contains(&voice) || voice == own || voice == model)
    {
        return Err(format!(
            "\"voice\" {voice:?} is not on this box; send {own:?} or one of OpenAI's voice names \
             ({}), which all speak with it",
            OPENAI_VOICES.join(", ")
        ));
    }
    let format = match object.get("response_format") {
        // OpenAI's default is mp3, which this engine does not make; WAV plays everywhere.
        None | Some(Value::Null) => SpeechFormat::Wav,
        Some(Value::String(format)) => match format.as_str() {
            "wav" => SpeechFormat::Wav,
            "opus" => SpeechFormat::Opus,
            "pcm" => SpeechFormat::Pcm,
            other => {
                return Err(format!(
                    "\"response_format\" {other:?} is not made here; this engine makes \"wav\", \
                     \"opus\" (Ogg Opus) and \"pcm\""
                ));
            }
        },
        Some(other) => return Err(format!("\"response_format\" is {other}, not a string")),
    };
    let speed = match object.get("speed") {
        None | Some(Value::Null) => 1.0,
        Some(Value::Number(speed)) => speed.as_f64().unwrap_or(f64::NAN),
        Some(other) => return Err(format!("\"speed\" is {other}, not a number")),
    };
    if !(f64::from(MIN_SPEED)..=f64::from(MAX_SPEED)).contains(&speed) {
        return Err(format!(
            "\"speed\" {speed} is outside {MIN_SPEED} to {MAX_SPEED}; 1 is the voice's own pace"
        ));
    }
    if let Some(format) = object.get("stream_format").and_then(Value::as_str)
        && format != "audio"
    {
        return Err(format!(
            "\"stream_format\" {format:?} is not offered; leave it out or send \"audio\""
        ));
    }
    if object.get("instructions").is_some_and(|i| !i.is_null()) {
        return Err("\"instructions\" cannot steer this voice; leave them out".into());
    }
    Ok(SpeechRequest {
        model,
        input,
        format,
        speed: speed as f32,
    })
}

pub(super) async fn speech(engine: Arc<Engine>, body: Bytes) -> ApiResponse {
    let request = match parse_speech_request(&body) {
        Ok(request) => request,
        Err(message) => return invalid(message),
    };
    if let Some(response) = check_capability(&engine, &request.model, Capability::Speech) {
        return response;
    }
    let format = request.format;
    let computed = tokio::task::spawn_blocking(move || {
        let speech = engine.speak(&request.model, &request.input, request.speed)?;
        encode(&speech, format).map(|bytes| (bytes, speech.sample_rate))
    })
    .await;
    let (bytes, rate) = match computed {
        Ok(Ok(result)) => result,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    let content_type = match format {
        SpeechFormat::Wav => "audio/wav",
        SpeechFormat::Opus => "audio/ogg",
        SpeechFormat::Pcm => "audio/pcm",
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert("x-sample-rate", header::HeaderValue::from(rate));
    response
}

fn encode(speech: &Speech, format: SpeechFormat) -> crate::Result<Vec<u8>> {
    Ok(match format {
        SpeechFormat::Wav => encode_wav(&speech.samples, speech.sample_rate),
        SpeechFormat::Opus => encode_ogg_opus(&speech.samples, speech.sample_rate)?,
        SpeechFormat::Pcm => speech
            .samples
            .iter()
            .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<SpeechRequest, String> {
        parse_speech_request(body.as_bytes())
    }

    #[test]
    fn openais_request_is_taken_with_its_voices_and_defaults() {
        let request =
            parse(r#"{"model": "piper-en-us-joe-medium", "input": "Hi.", "voice": "alloy"}"#)
                .unwrap();
        assert_eq!(
            (
                request.model.as_str(),
                request.input.as_str(),
                request.format,
                request.speed
            ),
            ("piper-en-us-joe-medium", "Hi.", SpeechFormat::Wav, 1.0)
        );
        let request = parse(
            r#"{"input": "Hi.", "voice": "joe", "response_format": "opus", "speed": 1.5,
                "stream_format": "audio"}"#,
        )
        .unwrap();
        assert_eq!(request.model, DEFAULT_VOICE_MODEL);
        assert_eq!((request.format, request.speed), (SpeechFormat::Opus, 1.5));
        let custom = r#"{"input": "Hi.", "voice": {"id": "piper-en-us-joe-medium"}, "response_format": "pcm"}"#;
        assert_eq!(parse(custom).unwrap().format, SpeechFormat::Pcm);
    }

    #[test]
    fn each_bad_request_says_what_to_send() {
        let error = |body: &str| parse(body).unwrap_err();
        assert!(error("{").starts_with("the body is not JSON"));
        assert!(error(r#"{"voice": "joe"}"#).starts_with("\"input\" is missing"));
        assert!(error(r#"{"input": " \n", "voice": "joe"}"#).starts_with("\"input\" is empty"));
        let long = format!(r#"{{"input": "{}", "voice": "joe"}}"#, "a".repeat(4097));
        assert!(error(&long).starts_with("\"input\" has 4097 characters; send at most 4096"));
        let exactly = format!(r#"{{"input": "{}", "voice": "joe"}}"#, "é".repeat(4096));
        assert!(parse(&exactly).is_ok(), "4096 characters, 8192 bytes");
        assert!(error(r#"{"input": "a"}"#).starts_with("\"voice\" is missing"));
        assert!(
            error(r#"{"input": "a", "voice": "bob"}"#).contains("send \"joe\" or one of OpenAI's")
        );
        for format in ["mp3", "aac", "flac"] {
            let body =
                format!(r#"{{"input": "a", "voice": "joe", "response_format": "{format}"}}"#);
            assert!(
                error(&body)
                    .ends_with("this engine makes \"wav\", \"opus\" (Ogg Opus) and \"pcm\""),
                "{format}"
            );
        }
        for speed in ["0.2", "4.5", "\"fast\""] {
            let body = format!(r#"{{"input": "a", "voice": "joe", "speed": {speed}}}"#);
            assert!(error(&body).starts_with("\"speed\""), "{speed}");
        }
        assert!(parse(r#"{"input": "a", "voice": "joe", "speed": 4}"#).is_ok());
        assert!(parse(r#"{"input": "a", "voice": "joe", "speed": 0.25}"#).is_ok());
        assert!(
            error(r#"{"input": "a", "voice": "joe", "stream_format": "sse"}"#)
                .contains("stream_format")
        );
        assert!(
            error(r#"{"input": "a", "voice": "joe", "instructions": "cheerful"}"#)
                .contains("leave them out")
        );
    }

    #[test]
    fn pcm_is_16_bit_little_endian_clipped() {
        let speech = Speech {
            samples: vec![0.0, 1.0, -2.0, 0.5],
            sample_rate: 22_050,
        };
        let bytes = encode(&speech, SpeechFormat::Pcm).unwrap();
        let values: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(values, [0, 32767, -32767, 16383]);
    }
}
