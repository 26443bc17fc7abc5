//! The engine's service, `carapace-infer serve`, as a program on loopback: its answers in
//! OpenAI's formats (checked with OpenAI's own Python client too), its errors, a model that
//! cannot load while the others work, and models dropped when idle. The pinned models are
//! fetched into the cache on the first run.

mod common;
#[path = "common/server.rs"]
mod server;

use server::{Server, models_dir, serve};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn client() -> reqwest::Client {
    carapace_http::loopback_client(Duration::from_secs(60)).unwrap()
}

async fn post_json(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    post(server, path, body.to_string().into_bytes()).await
}

/// POSTs `body` as it is (a WAV, broken JSON) and returns the status and the JSON answer.
async fn post(server: &Server, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", server.url))
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// sentence-transformers' vectors for the reference sentences (tests/data/reference.json).
fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (
        serde_json::from_value(json["sentences"].clone()).unwrap(),
        serde_json::from_value(json["embeddings"].clone()).unwrap(),
    )
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn embeddings_match_sentence_transformers_as_floats_and_as_base64() {
    let server = serve(&models_dir(), &[]);
    let (sentences, expected) = reference();
    let sentences = &sentences[..8];
    let (status, body) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": sentences}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "all-minilm-l6-v2");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > sentences.len() as u64);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), sentences.len());
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        let vector: Vec<f32> = serde_json::from_value(item["embedding"].clone()).unwrap();
        assert_eq!(vector.len(), 384);
        let similarity = cosine(&vector, &expected[i]);
        assert!(similarity >= 0.999, "sentence {i}: cosine {similarity}");
    }

    let (status, body) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": sentences[0], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let vector: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(cosine(&vector, &expected[0]) >= 0.999);
}

#[tokio::test]
async fn openais_python_client_lists_the_models_and_gets_the_same_embeddings() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/venv-openai/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make deps` installs OpenAI's client there",
        python.display()
    );
    let server = serve(&models_dir(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openai_client.py");
    let speech = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(speech.path(), common::espeak_wav(SPOKEN)).unwrap();
    let output = Command::new(&python)
        .arg(script)
        .arg(&server.url)
        .arg(speech.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    let models: Vec<String> = serde_json::from_value(got["models"].clone()).unwrap();
    assert!(
        models.contains(&"all-minilm-l6-v2".to_string()),
        "{models:?}"
    );
    assert!(models.contains(&"silero-vad".to_string()), "{models:?}");
    let default: Vec<Vec<f32>> = serde_json::from_value(got["default"].clone()).unwrap();
    let float: Vec<f32> = serde_json::from_value(got["float"].clone()).unwrap();
    assert_eq!(default.len(), 2);
    assert_eq!(default[0].len(), 384);
    // The client's base64 default and the float form carry the same vector.
    assert!(cosine(&default[0], &float) > 0.99999);
    assert!(got["default_usage"].as_u64().unwrap() >= 2);
    assert_eq!(got["unknown"]["status"], 404);
    assert_eq!(got["unknown"]["code"], "model_not_found");

    // Speech to text, as the client's three response formats.
    assert_eq!(got["transcript"], SPOKEN, "{got}");
    assert_eq!(got["plain"], format!("{SPOKEN}\n"), "{got}");
    assert_eq!(got["verbose"]["text"], SPOKEN, "{got}");
    assert_eq!(got["verbose"]["language"], "english");
    assert_eq!(got["verbose"]["segments"], json!([SPOKEN]));
    assert!(got["verbose"]["duration"].as_f64().unwrap() > 1.0);
    assert_eq!(got["french"]["status"], 400, "{got}");
    let french = got["french"]["message"].as_str().unwrap();
    // The client puts "Error code: 400 - " before the message.
    assert!(
        french.ends_with(
            "this model hears English only, not \"fr\"; leave `language` out or send \"en\""
        ),
        "{french}"
    );
}

/// What the transcription tests say (Whisper tiny hears this one espeak-ng sentence exactly).
const SPOKEN: &str = "Please send the report to my brother tonight.";

/// A multipart/form-data upload as OpenAI's clients send it.
async fn upload(server: &Server, parts: reqwest::multipart::Form) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/audio/transcriptions", server.url))
        .multipart(parts)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_transcription_request_that_is_not_right_says_what_to_send() {
    use reqwest::multipart::{Form, Part};
    let server = serve(&models_dir(), &[]);
    let wav = || Part::bytes(common::espeak_wav(SPOKEN)).file_name("speech.wav");

    let (status, body) = post(&server, "/v1/audio/transcriptions", b"{}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("send the audio as multipart/form-data"),
        "{body}"
    );

    let (status, body) = upload(&server, Form::new().text("model", "whisper-tiny-en")).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("the form has no `file` part"),
        "{body}"
    );

    let form = Form::new().part("file", wav()).text("temperature", "0.7");
    let (status, body) = upload(&server, form).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("`temperature` 0.7 is not offered"),
        "{body}"
    );

    let form = Form::new()
        .part("file", wav())
        .text("response_format", "srt");
    let (status, body) = upload(&server, form).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("`response_format` \"srt\""),
        "{body}"
    );

    let form = Form::new().part("file", Part::bytes(b"OggS not a wav".to_vec()));
    let (status, body) = upload(&server, form).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("the audio is not usable"),
        "{body}"
    );

    let form = Form::new()
        .part("file", wav())
        .text("model", "all-minilm-l6-v2");
    let (status, body) = upload(&server, form).await;
    assert_eq!(status, 400, "{body}");

    // A voice note as the IM apps send it (Ogg Opus), without a model: the default one (the
    // first of SPEECH_MODELS carried: whisper-base, as the cache holds every pinned model)
    // hears it.
    const HEARD_BY_BOTH: &str = "We need milk, bread and some eggs from the shop.";
    let note = carapace_fakes::voice_note::voice_note(HEARD_BY_BOTH);
    let note = Part::bytes(note).file_name("note.ogg");
    let form = Form::new()
        .part("file", note)
        .text("response_format", "verbose_json");
    let (status, body) = upload(&server, form).await;
    // (Whisper base may hear "her shop" through the Opus coding.)
    let heard = |body: &Value| body["text"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (status, body["language"].as_str()),
        (200, Some("english")),
        "{body}"
    );
    assert!(
        heard(&body).starts_with("We need milk, bread and some eggs from"),
        "{body}"
    );

    // Without a model, a WAV: the default one, and it hears.
    let wav = Part::bytes(common::espeak_wav(HEARD_BY_BOTH)).file_name("speech.wav");
    let (status, body) = upload(&server, Form::new().part("file", wav)).await;
    assert_eq!(
        (status, heard(&body)),
        (200, HEARD_BY_BOTH.to_string()),
        "{body}"
    );
}

/// Whisper base, a pinned model the engine offers where it is carried (here the cache, where
/// `carapace-infer fetch` put it): listed, it tells German from the audio, and says so as
/// OpenAI's API does; asked for German, it hears German.
#[tokio::test]
async fn the_multilingual_model_is_offered_where_carried_and_tells_the_language() {
    use reqwest::multipart::{Form, Part};
    let models = models_dir();
    let server = serve(&models, &[]);
    let (status, body) = get(&server, "/v1/models").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|model| model["id"].as_str())
        .collect();
    assert!(ids.contains(&"whisper-base"), "{ids:?}");
    let german = "Bitte schick den Bericht heute Abend an meinen Bruder.";
    let wav = || Part::bytes(common::espeak_wav_in("de", german)).file_name("speech.wav");
    for language in [None, Some("de")] {
        let mut form = Form::new()
            .part("file", wav())
            .text("model", "whisper-base")
            .text("response_format", "verbose_json");
        if let Some(language) = language {
            form = form.text("language", language);
        }
        let (status, body) = upload(&server, form).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["language"], "german", "{body}");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("Bitte schick den Bericht heute Abend"),
            "{body}"
        );
    }

    // Where the image does not carry it, it is not offered.
    let bare = tempfile::tempdir().unwrap();
    let server = serve(bare.path(), &[]);
    let (status, body) = get(&server, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("whisper-base"), "{body}");
    assert!(body.to_string().contains("whisper-tiny-en"), "{body}");
}

#[tokio::test]
async fn voice_activity_finds_the_speech_in_an_espeak_wav_at_its_own_rate() {
    let server = serve(&models_dir(), &[]);
    // espeak-ng writes 22,050 Hz: the engine resamples.
    let wav = common::espeak_wav("turn the heating down a little");
    let (status, body) = post(&server, "/v1/audio/voice-activity", wav).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "silero-vad");
    let duration = body["duration"].as_f64().unwrap();
    let segments = body["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{body}");
    let speech: f64 = segments
        .iter()
        .map(|s| s["end"].as_f64().unwrap() - s["start"].as_f64().unwrap())
        .sum();
    assert!(
        speech > 0.6 * duration,
        "{speech} s of speech in {duration} s: {body}"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_engine_keeps_answering() {
    let server = serve(&models_dir(), &[]);
    let (status, body) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "gpt-4o", "input": "hello"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "model_not_found"),
        "{body}"
    );
    assert!(error_message(&body).contains("GET /v1/models"), "{body}");

    let (status, body) = post(&server, "/v1/embeddings", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("the body is not JSON"),
        "{body}"
    );

    // A corrupt WAV: a RIFF header with nothing sensible after it.
    let corrupt = b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk".to_vec();
    let (status, body) = post(&server, "/v1/audio/voice-activity", corrupt).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).starts_with("the audio is not usable"),
        "{body}"
    );

    // 26 MB: over the limit, refused before anything is decoded.
    let (status, body) = post(&server, "/v1/audio/voice-activity", vec![0; 26 << 20]).await;
    assert_eq!((status, error_code(&body)), (413, "request_too_large"));

    // The wrong model for the endpoint.
    let (status, body) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "silero-vad", "input": "hello"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = get(&server, "/v1/embeddings").await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));

    // Still up, still right.
    assert_eq!(
        get(&server, "/health").await,
        (200, json!({"status": "ok"}))
    );
    let (status, _) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": "still here"}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_model_that_cannot_load_is_reported_and_the_other_models_keep_working() {
    let fetched = models_dir();
    let models = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&fetched).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            std::os::unix::fs::symlink(entry.path(), models.path().join(entry.file_name()))
                .unwrap();
        }
    }
    // Silero's folder with a file that is not ONNX.
    let vad = models.path().join("silero-vad-6.2.3");
    std::fs::remove_file(&vad).unwrap();
    std::fs::create_dir(&vad).unwrap();
    std::fs::write(vad.join("silero_vad.onnx"), b"not a model").unwrap();

    let server = serve(models.path(), &[]);
    let path = "/v1/audio/voice-activity?model=silero-vad";
    let (status, body) = post(&server, path, common::espeak_wav("hello")).await;
    assert_eq!((status, error_code(&body)), (503, "model_unavailable"));
    let message = error_message(&body);
    assert!(
        message.starts_with("model silero-vad cannot be loaded"),
        "{message}"
    );
    assert!(message.contains("silero_vad.onnx"), "{message}");

    let (status, _) = post_json(
        &server,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": "the rest works"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, vad_status) = get(&server, "/v1/models/silero-vad").await;
    assert_eq!(vad_status["loaded"], false);
    assert!(
        vad_status["last_error"]
            .as_str()
            .unwrap()
            .contains("silero_vad.onnx")
    );
    let (_, minilm) = get(&server, "/v1/models/all-minilm-l6-v2").await;
    assert_eq!(
        (minilm["loaded"].clone(), minilm["device"].clone()),
        (json!(true), json!("cpu"))
    );
}

#[tokio::test]
async fn a_model_left_idle_is_unloaded_and_loads_again_when_asked() {
    let server = serve(&models_dir(), &["--idle-unload-secs", "1"]);
    async fn loaded(server: &Server) -> Value {
        get(server, "/v1/models/all-minilm-l6-v2").await.1["loaded"].clone()
    }
    async fn embed(server: &Server) -> u16 {
        let body = json!({"model": "all-minilm-l6-v2", "input": "x"});
        post_json(server, "/v1/embeddings", &body).await.0
    }
    assert_eq!(loaded(&server).await, false);
    assert_eq!(embed(&server).await, 200);
    assert_eq!(loaded(&server).await, true);
    let started = Instant::now();
    while loaded(&server).await == true {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never unloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(embed(&server).await, 200);
    assert_eq!(loaded(&server).await, true);
}

#[test]
fn the_api_refuses_to_listen_beyond_loopback() {
    let output = Command::new(env!("CARGO_BIN_EXE_carapace-infer"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "carapace-infer: the local API listens on loopback only, not on 0.0.0.0:0"
        ),
        "{stderr}"
    );
}
