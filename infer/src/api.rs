//! The local API's requests and answers: OpenAI's formats where OpenAI has the endpoint
//! (`/v1/models`, `/v1/embeddings`, `/v1/audio/transcriptions`, `/v1/audio/speech`), ours where it
//! does not (`/v1/audio/voice-activity`, `/v1/images/ocr`, `/v1/images/describe`, and the
//! owner's model packs: `POST /v1/packs` with a pack's tar, `DELETE /v1/packs/{id}`), and
//! OpenAI's error object for every failure, with a message that says what to change.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::audio::decode_audio;
use crate::engine::{Capability, Engine, ModelStatus};
use crate::error::Error;
use crate::image_file::decode_image;
use crate::whisper::TranscribeOptions;

mod describe;
mod packs;
mod speech;
pub(crate) use packs::add_pack;
pub use speech::MAX_SPEECH_INPUT_CHARS;

/// The most texts one embeddings request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// The model a request without one gets, per capability.
const DEFAULT_VAD: &str = board_support::local_inference::VOICE_ACTIVITY_MODEL;
const DEFAULT_OCR: &str = board_support::local_inference::OCR_MODEL;

pub type ApiResponse = Response<Full<Bytes>>;

/// The request's Content-Type, for the multipart endpoints.
fn content_type(request: &Request<Bytes>) -> Option<String> {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Answers one request (its body already read and within the size limit).
pub async fn handle(engine: Arc<Engine>, request: Request<Bytes>) -> ApiResponse {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/health") => ok(json!({"status": "ok"})),
        (Method::GET, "/v1/models") => ok(json!({
            "object": "list",
            "data": engine.status().iter().map(model_object).collect::<Vec<_>>(),
        })),
        (Method::GET, path) if path.starts_with("/v1/models/") => {
            let id = &path["/v1/models/".len()..];
            match engine.status().iter().find(|status| status.id == id) {
                Some(status) => ok(model_object(status)),
                None => unknown_model(id),
            }
        }
        (Method::POST, "/v1/embeddings") => embeddings(engine, request.into_body()).await,
        (Method::POST, "/v1/audio/voice-activity") => {
            let model = query_value(request.uri().query(), "model");
            voice_activity(engine, model, request.into_body()).await
        }
        (Method::POST, "/v1/audio/transcriptions") => {
            let content_type = content_type(&request);
            transcriptions(engine, content_type, request.into_body()).await
        }
        (Method::POST, "/v1/audio/speech") => speech::speech(engine, request.into_body()).await,
        (Method::POST, "/v1/images/ocr") => {
            let content_type = content_type(&request);
            ocr(engine, content_type, request.into_body()).await
        }
        (Method::POST, "/v1/images/describe") => {
            let content_type = content_type(&request);
            describe::describe(engine, content_type, request.into_body()).await
        }
        (Method::DELETE, path) if path.starts_with("/v1/packs/") => {
            packs::remove_pack(engine, &path["/v1/packs/".len()..]).await
        }
        (
            _,
            "/health"
            | "/v1/models"
            | "/v1/embeddings"
            | "/v1/audio/voice-activity"
            | "/v1/audio/transcriptions"
            | "/v1/audio/speech"
            | "/v1/images/ocr"
            | "/v1/images/describe"
            | "/v1/packs",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{} does not take {}", path, request.method()),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!(
                "no endpoint {path}; this engine serves /v1/models, /v1/embeddings, \
                 /v1/audio/transcriptions, /v1/audio/speech, /v1/audio/voice-activity, \
                 /v1/images/ocr, /v1/images/describe and /v1/packs"
            ),
        ),
    }
}

fn model_object(status: &ModelStatus) -> Value {
    json!({
        "id": status.id,
        "object": "model",
        "created": 0,
        "owned_by": "carapace",
        "capability": status.capability,
        "source": status.source,
        "version": status.version,
        "loaded": status.loaded,
        "device": status.device,
        "device_reason": status.device_reason,
        "last_error": status.last_error,
    })
}

async fn embeddings(engine: Arc<Engine>, body: Bytes) -> ApiResponse {
    let request = match parse_embeddings_request(&body) {
        Ok(request) => request,
        Err(message) => return invalid(message),
    };
    if let Some(response) = check_capability(&engine, &request.model, Capability::Embeddings) {
        return response;
    }
    let model = request.model.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let inputs: Vec<&str> = request.inputs.iter().map(String::as_str).collect();
        engine.embed(&request.model, &inputs)
    })
    .await;
    let (vectors, pieces) = match computed {
        Ok(Ok(result)) => result,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if request.base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": pieces, "total_tokens": pieces},
    }))
}

struct EmbeddingsRequest {
    model: String,
    inputs: Vec<String>,
    base64: bool,
}

fn parse_embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not JSON ({e}); send {{\"model\": ..., \"input\": ...}}")
    })?;
    let Some(object) = value.as_object() else {
        return Err("the body must be a JSON object with \"model\" and \"input\"".into());
    };
    let model = match object.get("model") {
        Some(Value::String(model)) => model.clone(),
        _ => return Err("\"model\" is missing or not a string; GET /v1/models lists them".into()),
    };
    let inputs = match object.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(Value::Array(_)) => {
            return Err(
                "\"input\" must be text: a string or a list of strings (token arrays are not \
                 taken)"
                    .into(),
            );
        }
        _ => return Err("\"input\" is missing; send a string or a list of strings".into()),
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(format!(
            "\"input\" has {} texts; send 1 to {MAX_EMBEDDING_INPUTS}",
            inputs.len()
        ));
    }
    let base64 = match object.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(other) => {
            return Err(format!(
                "\"encoding_format\" is {other}; send \"float\" or \"base64\""
            ));
        }
    };
    if let Some(dimensions) = object.get("dimensions").filter(|d| !d.is_null()) {
        return Err(format!(
            "\"dimensions\" ({dimensions}) cannot be chosen: the model's vectors have one fixed \
             length; leave it out"
        ));
    }
    Ok(EmbeddingsRequest {
        model,
        inputs,
        base64,
    })
}

async fn voice_activity(engine: Arc<Engine>, model: Option<String>, body: Bytes) -> ApiResponse {
    let model = model.unwrap_or_else(|| DEFAULT_VAD.to_string());
    if let Some(response) = check_capability(&engine, &model, Capability::VoiceActivity) {
        return response;
    }
    let id = model.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let samples = decode_audio(&body)?;
        let segments = engine.speech_segments(&id, &samples)?;
        Ok::<_, Error>((samples.len(), segments))
    })
    .await;
    let (length, segments) = match computed {
        Ok(Ok(result)) => result,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    let seconds = |samples: usize| samples as f64 / f64::from(crate::audio::SPEECH_SAMPLE_RATE);
    ok(json!({
        "model": model,
        "duration": seconds(length),
        "segments": segments
            .iter()
            .map(|s| json!({"start": s.start_seconds(), "end": s.end_seconds()}))
            .collect::<Vec<_>>(),
    }))
}

async fn transcriptions(
    engine: Arc<Engine>,
    content_type: Option<String>,
    body: Bytes,
) -> ApiResponse {
    let form = match read_transcription_form(content_type.as_deref(), body).await {
        Ok(form) => form,
        Err(message) => return invalid(message),
    };
    let model = form
        .model
        .clone()
        .unwrap_or_else(|| default_transcription(&engine));
    if let Some(response) = check_capability(&engine, &model, Capability::Transcription) {
        return response;
    }
    let options = form.options.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let samples = decode_audio(&form.file)?;
        engine.transcribe(&model, &samples, &options)
    })
    .await;
    let transcript = match computed {
        Ok(Ok(transcript)) => transcript,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    let usage = json!({"type": "duration", "seconds": transcript.duration.ceil() as u64});
    match form.format {
        TranscriptFormat::Json => ok(json!({"text": transcript.text, "usage": usage})),
        TranscriptFormat::Text => {
            let mut response =
                Response::new(Full::new(Bytes::from(format!("{}\n", transcript.text))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        TranscriptFormat::VerboseJson => ok(json!({
            "task": "transcribe",
            "language": crate::whisper::languages::name(&transcript.language).unwrap_or(&transcript.language),
            "duration": transcript.duration,
            "text": transcript.text,
            "segments": transcript.segments.iter().enumerate().map(|(id, s)| json!({
                "id": id,
                "seek": (s.start * 100.0).round() as u64,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": s.tokens,
                "temperature": 0.0,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
            })).collect::<Vec<_>>(),
            "usage": usage,
        })),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TranscriptFormat {
    Json,
    Text,
    VerboseJson,
}

struct TranscriptionForm {
    file: Bytes,
    /// None: the first of board-support's SPEECH_MODELS the engine offers.
    model: Option<String>,
    options: TranscribeOptions,
    format: TranscriptFormat,
}

/// The speech model a transcription that names none goes to: the first of
/// [`SPEECH_MODELS`](board_support::local_inference::SPEECH_MODELS) this engine offers.
fn default_transcription(engine: &Engine) -> String {
    let models = board_support::local_inference::SPEECH_MODELS;
    let offered = models.iter().find(|id| engine.capability(id).is_ok());
    offered.unwrap_or(&models[models.len() - 1]).to_string()
}

/// The parts of OpenAI's transcription upload (multipart/form-data), each checked.
async fn read_transcription_form(
    content_type: Option<&str>,
    body: Bytes,
) -> Result<TranscriptionForm, String> {
    let parts = form_parts(
        content_type,
        body,
        "send the audio as multipart/form-data with a `file` part and a `model` part, as \
         OpenAI's clients do",
    )
    .await?;
    let mut file = None;
    let mut model = None;
    let mut options = TranscribeOptions::default();
    let mut format = TranscriptFormat::Json;
    for (name, bytes) in parts {
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map(|text| text.trim().to_string())
                .map_err(|_| format!("`{name}` is not UTF-8 text"))
        };
        match name.as_str() {
            "file" => file = Some(bytes.clone()),
            "model" => model = Some(text()?),
            "language" => options.language = Some(text()?).filter(|l| !l.is_empty()),
            "prompt" => options.prompt = Some(text()?),
            "response_format" => {
                format = match text()?.as_str() {
                    "json" => TranscriptFormat::Json,
                    "text" => TranscriptFormat::Text,
                    "verbose_json" => TranscriptFormat::VerboseJson,
                    other => {
                        return Err(format!(
                            "`response_format` {other:?} is not offered; send \"json\", \"text\" \
                             or \"verbose_json\""
                        ));
                    }
                }
            }
            "temperature" => {
                let value = text()?;
                if value.parse::<f64>().ok() != Some(0.0) {
                    return Err(format!(
                        "`temperature` {value} is not offered: decoding is greedy (0); leave it out"
                    ));
                }
            }
            "stream" if text()? == "false" => {}
            other => {
                return Err(format!(
                    "`{other}` is not taken here; send file, model, and optionally language, \
                     prompt, response_format"
                ));
            }
        }
    }
    Ok(TranscriptionForm {
        file: file.ok_or("the form has no `file` part; send the audio as a WAV file")?,
        model,
        options,
        format,
    })
}

/// The parts of a multipart/form-data body, by name, in order; `how` says what to send when
/// the body is not such a form.
async fn form_parts(
    content_type: Option<&str>,
    body: Bytes,
    how: &str,
) -> Result<Vec<(String, Bytes)>, String> {
    let boundary = content_type
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or_else(|| how.to_string())?;
    let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(body, boundary);
    let unreadable =
        |e: multer::Error| format!("the form does not parse ({e}); send multipart/form-data");
    let mut found = Vec::new();
    while let Some(part) = parts.next_field().await.map_err(unreadable)? {
        let name = part.name().unwrap_or_default().to_string();
        found.push((name, part.bytes().await.map_err(unreadable)?));
    }
    Ok(found)
}

/// Text in an image: a form with the image as `file` (PNG or JPEG) and optionally `model`;
/// the answer has all the text, a line per line, and each line with its confidence and box.
async fn ocr(engine: Arc<Engine>, content_type: Option<String>, body: Bytes) -> ApiResponse {
    let (file, model) = match read_ocr_form(content_type.as_deref(), body).await {
        Ok(form) => form,
        Err(message) => return invalid(message),
    };
    if let Some(response) = check_capability(&engine, &model, Capability::Ocr) {
        return response;
    }
    let id = model.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let image = decode_image(&file)?;
        engine.read_text(&id, &image)
    })
    .await;
    let lines = match computed {
        Ok(Ok(lines)) => lines,
        Ok(Err(failure)) => return engine_error(&failure),
        Err(join) => return internal(format!("the computation stopped: {join}")),
    };
    let text: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
    ok(json!({"model": model, "text": text.join("\n"), "lines": lines}))
}

/// The image and the model of an OCR form.
async fn read_ocr_form(content_type: Option<&str>, body: Bytes) -> Result<(Bytes, String), String> {
    let parts = form_parts(
        content_type,
        body,
        "send the image as multipart/form-data with a `file` part (PNG or JPEG) and optionally \
         a `model` part",
    )
    .await?;
    let (mut file, mut model) = (None, None);
    for (name, bytes) in parts {
        match name.as_str() {
            "file" => file = Some(bytes),
            "model" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| "`model` is not UTF-8 text".to_string())?;
                model = Some(text.trim().to_string()).filter(|m| !m.is_empty());
            }
            other => {
                return Err(format!(
                    "`{other}` is not taken here; send file and optionally model"
                ));
            }
        }
    }
    Ok((
        file.ok_or("the form has no `file` part; send the image (PNG or JPEG) as `file`")?,
        model.unwrap_or_else(|| DEFAULT_OCR.to_string()),
    ))
}

/// None when `model` does `wanted`, else the answer that says why not.
fn check_capability(engine: &Engine, model: &str, wanted: Capability) -> Option<ApiResponse> {
    match engine.capability(model) {
        Ok(capability) if capability == wanted => None,
        Ok(capability) => Some(invalid(format!(
            "model {model} does {capability:?}, not {wanted:?}; GET /v1/models lists them"
        ))),
        Err(_) => Some(unknown_model(model)),
    }
}

/// The value of `name` in a URL query (`?model=silero-vad`).
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn engine_error(failure: &Error) -> ApiResponse {
    match failure {
        Error::UnknownModel { model } => unknown_model(model),
        Error::ModelUnavailable { .. } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "model_unavailable",
            failure.to_string(),
        ),
        Error::BadAudio { .. }
        | Error::BadImage { .. }
        | Error::ImageTooLarge { .. }
        | Error::BadRequest { .. }
        | Error::Tokenize { .. }
        | Error::WrongCapability { .. } => invalid(failure.to_string()),
        _ => internal(failure.to_string()),
    }
}

fn unknown_model(model: &str) -> ApiResponse {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "model_not_found",
        format!("there is no model {model:?} on this box; GET /v1/models lists them"),
    )
}

fn invalid(message: String) -> ApiResponse {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        message,
    )
}

fn internal(message: String) -> ApiResponse {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal_error",
        message,
    )
}

/// OpenAI's error object.
pub fn error(status: StatusCode, kind: &str, code: &str, message: String) -> ApiResponse {
    respond(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

fn ok(body: Value) -> ApiResponse {
    respond(StatusCode::OK, &body)
}

fn respond(status: StatusCode, body: &Value) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(body: &str) -> String {
        match parse_embeddings_request(body.as_bytes()) {
            Ok(_) => panic!("{body} parsed"),
            Err(message) => message,
        }
    }

    #[test]
    fn one_string_or_a_list_of_strings_is_taken_with_either_encoding() {
        let one = parse_embeddings_request(br#"{"model": "m", "input": "hi"}"#).unwrap();
        assert_eq!(
            (one.model.as_str(), one.inputs.as_slice(), one.base64),
            ("m", &["hi".to_string()][..], false)
        );
        let many = parse_embeddings_request(
            br#"{"model": "m", "input": ["a", "b"], "encoding_format": "base64", "user": "x"}"#,
        )
        .unwrap();
        assert_eq!(many.inputs, ["a", "b"]);
        assert!(many.base64);
    }

    #[test]
    fn each_malformed_request_says_what_to_send() {
        assert!(parse_error("{").starts_with("the body is not JSON"));
        assert!(parse_error(r#"{"input": "hi"}"#).starts_with("\"model\" is missing"));
        assert!(parse_error(r#"{"model": "m"}"#).starts_with("\"input\" is missing"));
        assert!(parse_error(r#"{"model": "m", "input": [[101, 2023]]}"#).contains("token arrays"));
        assert!(parse_error(r#"{"model": "m", "input": []}"#).contains("send 1 to 2048"));
        assert!(
            parse_error(r#"{"model": "m", "input": "a", "encoding_format": "int8"}"#)
                .contains("send \"float\" or \"base64\"")
        );
        assert!(
            parse_error(r#"{"model": "m", "input": "a", "dimensions": 64}"#)
                .contains("leave it out")
        );
        let too_many = format!(r#"{{"model": "m", "input": {:?}}}"#, vec!["a"; 2049]);
        assert!(parse_error(&too_many).starts_with("\"input\" has 2049 texts"));
    }

    #[test]
    fn the_model_comes_from_the_query() {
        assert_eq!(
            query_value(Some("model=silero-vad"), "model").as_deref(),
            Some("silero-vad")
        );
        assert_eq!(
            query_value(Some("x=1&model=a%2Db"), "model").as_deref(),
            Some("a-b")
        );
        assert_eq!(query_value(Some("x=1"), "model"), None);
        assert_eq!(query_value(None, "model"), None);
    }
}
