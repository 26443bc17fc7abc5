//! SmolVLM's architecture (Idefics3) on candle against Hugging Face transformers itself, on a
//! tiny random-weight checkpoint that tests/data/make_vlm_reference.py made with the pinned
//! torch and transformers (scripts/vlm-venv.sh) and saved as a real one is saved: the
//! processor's pixels, the prompt's token ids, the logits of the prefill and of each greedy
//! step, and the greedy ids must all be transformers'. The committed files are the
//! reference, so this test needs no Python.
//!
//! A plain `main` (harness = false in Cargo.toml): candle's thread count must be set in the
//! environment before any other thread exists, and libtest starts threads first.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use candle_core::{DType, Device, Tensor};
use carapace_infer::vision::{Describer, KvCache, argmax, decode_picture};
use carapace_infer::{Capability, Engine, EngineConfig, Error};
use carapace_models::{PackRequest, RunsOn, make_pack};
use carapace_update::{KeyKind, SecretKey, Trust};

const THREADS: usize = 2;
/// Largest difference allowed between a logit here and transformers': both are the same
/// float32 computation in another order, which moves the last bits only (logits here are
/// about ±2, so 1e-4 is 0.005 % of their range; a wrong weight or order moves them by 0.1).
const LOGIT_TOLERANCE: f32 = 1e-4;
/// The processor's pixels: the same 8-bit Pillow resize, then one float32 division.
const PIXEL_TOLERANCE: f32 = 1e-6;

struct Reference {
    user_prompt: String,
    input_ids: Vec<u32>,
    pixel_values: Vec<f32>,
    generated_ids: Vec<u32>,
    generated_text: String,
    logits: Vec<Vec<f32>>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vlm")
}

fn read_reference() -> Reference {
    let text = std::fs::read_to_string(data_dir().join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |key: &str| json[key].clone();
    Reference {
        user_prompt: serde_json::from_value(field("user_prompt")).unwrap(),
        input_ids: serde_json::from_value(field("input_ids")).unwrap(),
        pixel_values: serde_json::from_value(field("pixel_values")).unwrap(),
        generated_ids: serde_json::from_value(field("generated_ids")).unwrap(),
        generated_text: serde_json::from_value(field("generated_text")).unwrap(),
        logits: serde_json::from_value(field("logits")).unwrap(),
    }
}

fn image_bytes() -> Vec<u8> {
    std::fs::read(data_dir().join("image.png")).unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn the_pixels_are_the_processors(d: &Describer, r: &Reference) {
    let image = decode_picture(&image_bytes()).unwrap();
    assert_eq!(
        (image.width, image.height),
        (45, 30),
        "the picture is not square"
    );
    let pixels = d.pixel_values(&image);
    let difference = max_difference(&pixels, &r.pixel_values);
    assert!(
        difference <= PIXEL_TOLERANCE,
        "pixels differ by {difference}"
    );
    println!("  pixels: max difference {difference:e}");
}

fn the_prompt_ids_are_the_processors(d: &Describer, r: &Reference) {
    assert_eq!(d.prompt_ids(&r.user_prompt).unwrap(), r.input_ids);
}

fn prefill_and_cached_steps_give_transformers_logits_and_ids(d: &Describer, r: &Reference) {
    let model = d.model();
    let image = model.image_features(&r.pixel_values).unwrap();
    let (mut logits, mut cache) = model.prefill(&r.input_ids, &image).unwrap();
    let mut generated = Vec::new();
    let mut worst = 0f32;
    for (step, expected) in r.logits.iter().enumerate() {
        let difference = max_difference(&logits, expected);
        assert!(
            difference <= LOGIT_TOLERANCE,
            "step {step}: logits differ by {difference}"
        );
        worst = worst.max(difference);
        if step == r.generated_ids.len() {
            break;
        }
        let token = argmax(&logits);
        generated.push(token);
        logits = model.step(token, &mut cache).unwrap();
    }
    assert_eq!(generated, r.generated_ids);
    assert_eq!(cache.len(), r.input_ids.len() + generated.len());
    println!(
        "  {} logit rows: max difference {worst:e}; ids {generated:?}",
        r.logits.len()
    );
}

fn a_cached_step_equals_recomputing_the_whole_sequence(d: &Describer, r: &Reference) {
    let model = d.model();
    let image = model.image_features(&r.pixel_values).unwrap();
    let (_, mut cache) = model.prefill(&r.input_ids, &image).unwrap();
    let mut cached = Vec::new();
    for &token in &r.generated_ids {
        cached = model.step(token, &mut cache).unwrap();
    }
    let mut whole = r.input_ids.clone();
    whole.extend(&r.generated_ids);
    let (recomputed, fresh): (Vec<f32>, KvCache) = model.prefill(&whole, &image).unwrap();
    assert_eq!(fresh.len(), cache.len());
    let difference = max_difference(&cached, &recomputed);
    assert!(
        difference <= 1e-5,
        "cached and recomputed differ by {difference}"
    );
    println!("  cached against recomputed: max difference {difference:e}");
}

fn describe_answers_what_transformers_generates(d: &Describer, r: &Reference) {
    let steps = r.generated_ids.len();
    let answer = d.describe(&image_bytes(), None, steps).unwrap();
    assert_eq!(answer.tokens, r.generated_ids);
    assert_eq!(answer.text, r.generated_text);
    assert_eq!(answer.prompt_tokens, r.input_ids.len());
    assert!(
        !answer.finished,
        "stopped at the token limit, not at the end of the turn"
    );
    // The question the caller asks is the one in the prompt.
    let asked = d
        .describe(&image_bytes(), Some(" Describe this image. "), steps)
        .unwrap();
    assert_eq!(asked.tokens, answer.tokens);
    println!("  answer: {:?}", answer.text);
}

fn a_file_that_is_no_image_or_a_prompt_with_image_markers_is_refused(d: &Describer, _: &Reference) {
    match d.describe(b"%PDF-1.7 not a picture", None, 4) {
        Err(Error::BadImage { reason }) => assert!(reason.contains("PNG"), "{reason}"),
        other => panic!("expected BadImage, got {:?}", other.map(|a| a.text)),
    }
    match d.describe(&image_bytes(), Some("and this <image>?"), 4) {
        Err(Error::BadRequest { reason }) => assert!(reason.contains("<image>"), "{reason}"),
        other => panic!("expected BadRequest, got {:?}", other.map(|a| a.text)),
    }
    let mut cut = image_bytes();
    cut.truncate(cut.len() / 2);
    assert!(matches!(
        d.describe(&cut, None, 4),
        Err(Error::BadImage { .. })
    ));
}

fn a_folder_without_weights_names_the_missing_file(_: &Describer, _: &Reference) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "processor_config.json", "tokenizer.json"] {
        std::fs::copy(data_dir().join(name), dir.path().join(name)).unwrap();
    }
    let threads = NonZeroUsize::new(THREADS).unwrap();
    match Describer::load(dir.path(), threads) {
        Err(Error::MissingModelFile { path }) => assert!(path.ends_with("model.safetensors")),
        Err(other) => panic!("expected MissingModelFile, got {other}"),
        Ok(_) => panic!("loaded without weights"),
    }
}

/// The checkpoint with every weight rounded to bfloat16 (as SmolVLM ships), saved once as
/// bfloat16 and once as those same values in float32: the engine keeps the first's dense layers
/// and token tables in bfloat16 and widens them as it multiplies, which must be the second's
/// arithmetic (another summation order only), prefill and cached steps alike.
fn a_bfloat16_checkpoint_computes_as_its_float32_widening(_: &Describer, r: &Reference) {
    let threads = NonZeroUsize::new(THREADS).unwrap();
    let weights =
        candle_core::safetensors::load(data_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let load = |dtype: DType| {
        let dir = tempfile::tempdir().unwrap();
        for name in ["config.json", "processor_config.json", "tokenizer.json"] {
            std::fs::copy(data_dir().join(name), dir.path().join(name)).unwrap();
        }
        let rounded: HashMap<String, Tensor> = weights
            .iter()
            .map(|(name, t)| {
                let t = t.to_dtype(DType::BF16).unwrap().to_dtype(dtype).unwrap();
                (name.clone(), t)
            })
            .collect();
        candle_core::safetensors::save(&rounded, dir.path().join("model.safetensors")).unwrap();
        let describer = Describer::load(dir.path(), threads).unwrap();
        let model = describer.model();
        let image = model.image_features(&r.pixel_values).unwrap();
        let (first, mut cache) = model.prefill(&r.input_ids, &image).unwrap();
        let mut rows = vec![first];
        for &token in r.generated_ids.iter().take(3) {
            rows.push(model.step(token, &mut cache).unwrap());
        }
        rows
    };
    let (half, widened) = (load(DType::BF16), load(DType::F32));
    let mut worst = 0f32;
    for (step, (h, w)) in half.iter().zip(&widened).enumerate() {
        let difference = max_difference(h, w);
        assert!(
            difference <= 1e-5,
            "step {step}: bfloat16 and float32 differ by {difference}"
        );
        worst = worst.max(difference);
    }
    // Rounding the weights moved the logits, so the comparison above is not of one file twice.
    assert!(max_difference(&half[0], &r.logits[0]) > 1e-4);
    println!("  {} logit rows: max difference {worst:e}", half.len());
}

/// The tiny model as a model pack signed with a test key, in an engine that trusts the key.
fn engine_with_pack(threads: NonZeroUsize) -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
    let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    make_pack(&PackRequest {
        model_dir: &data_dir(),
        name: "tiny-smolvlm",
        version: "1.0.0",
        capability: "image_description",
        runs_on: RunsOn::Candle,
        key: &signing,
        out_dir: &packs,
    })
    .unwrap();
    let trust = Trust::of_keys(&root, &[&signing]).unwrap();
    let engine = Engine::new(EngineConfig {
        models_dir: dir.path().join("models"),
        threads,
        idle_unload: Duration::from_secs(3600),
        onnx_runtime: Default::default(),
    })
    .unwrap();
    let lines = engine.add_packs(&[packs], || Ok(trust));
    assert!(
        lines.len() == 1
            && lines[0].starts_with("model pack tiny-smolvlm 1.0.0 (image_description"),
        "{lines:?}"
    );
    (dir, Arc::new(engine))
}

/// POSTs a multipart form to /v1/images/describe; the status and the JSON answer.
async fn post_form(engine: &Arc<Engine>, parts: &[(&str, &[u8])]) -> (u16, serde_json::Value) {
    let boundary = "carapace-test-boundary";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if *name == "file" {
            body.extend(b"; filename=\"image.png\"\r\nContent-Type: image/png");
        }
        body.extend(b"\r\n\r\n");
        body.extend(*value);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let request = hyper::Request::post("/v1/images/describe")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Bytes::from(body))
        .unwrap();
    let response = carapace_infer::api::handle(Arc::clone(engine), request).await;
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn the_engine_describes_with_a_signed_pack_through_the_api(threads: NonZeroUsize, r: &Reference) {
    let (_dir, engine) = engine_with_pack(threads);
    assert_eq!(
        engine.capability("tiny-smolvlm").unwrap(),
        Capability::ImageDescription
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let image = image_bytes();
    let steps = r.generated_ids.len().to_string();
    let (status, answer) = runtime.block_on(post_form(
        &engine,
        &[("file", &image), ("max_tokens", steps.as_bytes())],
    ));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["text"], r.generated_text.as_str());
    assert_eq!(answer["model"], "tiny-smolvlm");
    assert_eq!(answer["finish_reason"], "length");
    assert_eq!(answer["usage"]["prompt_tokens"], r.input_ids.len());
    assert_eq!(answer["usage"]["completion_tokens"], r.generated_ids.len());
    // Bad input: 400 with OpenAI's error object, saying what to send; the engine goes on.
    let (status, answer) = runtime.block_on(post_form(&engine, &[("file", b"GIF89a....")]));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("send a PNG or a JPEG"),
        "{answer}"
    );
    let (status, answer) = runtime.block_on(post_form(&engine, &[("prompt", b"What is it?")]));
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no `file` part"),
        "{answer}"
    );
    let (status, _) = runtime.block_on(post_form(
        &engine,
        &[("file", &image), ("max_tokens", b"100000")],
    ));
    assert_eq!(status, 400);
    let (status, answer) = runtime.block_on(post_form(
        &engine,
        &[("file", &image), ("model", b"whisper-tiny-en")],
    ));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = runtime.block_on(post_form(
        &engine,
        &[
            ("file", &image),
            ("prompt", b"Describe this image."),
            ("max_tokens", steps.as_bytes()),
        ],
    ));
    assert_eq!(
        (status, answer["text"].as_str()),
        (200, Some(r.generated_text.as_str()))
    );
    let loaded = engine
        .status()
        .into_iter()
        .find(|s| s.id == "tiny-smolvlm")
        .unwrap();
    assert!(loaded.loaded && loaded.last_error.is_none(), "{loaded:?}");
}

type Check = fn(&Describer, &Reference);

fn main() {
    let threads = NonZeroUsize::new(THREADS).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the first statement of main; no other thread exists yet.
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    let reference = read_reference();
    let describer = Describer::load(&data_dir(), threads).unwrap();
    let checks: [(&str, Check); 8] = [
        (
            "the_pixels_are_the_processors",
            the_pixels_are_the_processors,
        ),
        (
            "the_prompt_ids_are_the_processors",
            the_prompt_ids_are_the_processors,
        ),
        (
            "prefill_and_cached_steps_give_transformers_logits_and_ids",
            prefill_and_cached_steps_give_transformers_logits_and_ids,
        ),
        (
            "a_cached_step_equals_recomputing_the_whole_sequence",
            a_cached_step_equals_recomputing_the_whole_sequence,
        ),
        (
            "describe_answers_what_transformers_generates",
            describe_answers_what_transformers_generates,
        ),
        (
            "a_file_that_is_no_image_or_a_prompt_with_image_markers_is_refused",
            a_file_that_is_no_image_or_a_prompt_with_image_markers_is_refused,
        ),
        (
            "a_folder_without_weights_names_the_missing_file",
            a_folder_without_weights_names_the_missing_file,
        ),
        (
            "a_bfloat16_checkpoint_computes_as_its_float32_widening",
            a_bfloat16_checkpoint_computes_as_its_float32_widening,
        ),
    ];
    for (name, check) in checks {
        check(&describer, &reference);
        println!("test {name} ... ok");
    }
    the_engine_describes_with_a_signed_pack_through_the_api(threads, &reference);
    println!("test the_engine_describes_with_a_signed_pack_through_the_api ... ok");
    println!("test result: ok. {} passed", checks.len() + 1);
}
