//! The engine on ONNX Runtime's OpenVINO build (onnxruntime-openvino, pinned in models.lock
//! and fetched into the cache on the first run, 84 MB), on a machine without an Intel GPU:
//! PP-OCRv4 runs on OpenVINO's CPU plugin and reads the test page; Silero VAD, whose dynamic
//! rank OpenVINO's CPU plugin refuses, falls back to ONNX Runtime's CPU provider and still
//! finds the speech; Piper's voice, which the bench measured slower there, runs on ONNX
//! Runtime's CPU provider by choice; and the engine's status says where each runs and why. Its
//! own test binary: a process loads one ONNX Runtime.

mod common;

use std::num::NonZeroUsize;
use std::time::Duration;

use carapace_infer::{
    Engine, EngineConfig, OnnxRuntimeKind, SPEECH_SAMPLE_RATE, decode_wav, fetch_openvino_runtime,
    fetch_pinned, models_dir,
};

const VAD: &str = "silero-vad";
const OCR: &str = "pp-ocrv4";
const VOICE: &str = "piper-en-us-joe-medium";

#[test]
fn ocr_runs_on_openvino_models_it_refuses_or_runs_slower_use_the_cpu_provider_and_status_says_why()
{
    if std::env::consts::ARCH != "x86_64" {
        panic!("ONNX Runtime's OpenVINO build is pinned for x86-64 only; run this there");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        fetch_openvino_runtime().await.unwrap();
        fetch_pinned(VAD).await.unwrap();
        fetch_pinned(OCR).await.unwrap();
        fetch_pinned(VOICE).await.unwrap();
    });
    let engine = Engine::new(EngineConfig {
        models_dir: models_dir().unwrap(),
        threads: NonZeroUsize::new(2).unwrap(),
        idle_unload: Duration::from_secs(600),
        onnx_runtime: OnnxRuntimeKind::OpenVino,
    })
    .unwrap();
    let status = |id: &str| engine.status().into_iter().find(|s| s.id == id).unwrap();
    assert_eq!(
        status(OCR).device_reason,
        "placed when it first loads (ONNX Runtime)"
    );

    // OCR on OpenVINO: every line of the test page, in order, nearly every character right.
    let drawn = carapace_fakes::page::sample_lines();
    let image = carapace_fakes::page::page(900, 360, &drawn);
    let read = engine.read_text(OCR, &image).unwrap();
    let texts: Vec<&str> = read.iter().map(|l| l.text.as_str()).collect();
    let expected: Vec<&str> = drawn.iter().map(|d| d.text).collect();
    eprintln!("read {texts:?}");
    assert_eq!(
        texts.len(),
        expected.len(),
        "read {texts:?}, drew {expected:?}"
    );
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<Vec<_>>();
    let (mut wrong, mut total) = (0, 0);
    for (want, got) in expected.iter().zip(&texts) {
        let (want, got) = (squeeze(want), squeeze(got));
        wrong +=
            want.iter().zip(&got).filter(|(a, b)| a != b).count() + want.len().abs_diff(got.len());
        total += want.len();
    }
    assert!(
        wrong * 20 <= total,
        "{wrong} of {total} characters wrong: {texts:?}"
    );
    let ocr = status(OCR);
    assert_eq!(ocr.device, "openvino:CPU", "{}", ocr.device_reason);
    assert!(
        ocr.device_reason
            .starts_with("OpenVINO on the CPU: no Intel GPU render node in /sys/class/drm"),
        "{}",
        ocr.device_reason
    );

    // One sentence after a second of digital silence, then another second of silence.
    let rate = SPEECH_SAMPLE_RATE as f64;
    let speech = decode_wav(&common::espeak_wav("please remind me to call the plumber")).unwrap();
    let first = speech.iter().position(|s| s.abs() > 0.02).unwrap();
    let last = speech.iter().rposition(|s| s.abs() > 0.02).unwrap();
    let mut audio = vec![0.0f32; SPEECH_SAMPLE_RATE as usize];
    audio.extend_from_slice(&speech[first..=last]);
    let (start, end) = (1.0, audio.len() as f64 / rate);
    audio.extend(vec![0.0f32; SPEECH_SAMPLE_RATE as usize]);
    let found = engine.speech_segments(VAD, &audio).unwrap();
    assert!(!found.is_empty(), "no speech found");
    for segment in &found {
        assert!(
            segment.start_seconds() >= start - 0.1 && segment.end_seconds() <= end + 0.15,
            "a segment outside the speech at {start:.3}-{end:.3} s: {:.3}-{:.3}",
            segment.start_seconds(),
            segment.end_seconds()
        );
    }
    let covered: f64 = found
        .iter()
        .map(|s| s.end_seconds() - s.start_seconds())
        .sum();
    assert!(covered >= 0.85 * (end - start), "only {covered:.2} s found");

    // Silero's decoder has a branch of dynamic rank, which OpenVINO's CPU plugin refuses:
    // ONNX Runtime's CPU provider ran it, and the status says so and why.
    let vad = status(VAD);
    assert!(vad.loaded);
    assert_eq!(vad.device, "cpu", "{}", vad.device_reason);
    assert!(
        vad.device_reason
            .starts_with("OpenVINO on the CPU could not run it (")
            && vad.device_reason.contains("dynamic rank")
            && vad
                .device_reason
                .ends_with("), so ONNX Runtime's CPU provider does"),
        "{}",
        vad.device_reason
    );

    // Piper could run on OpenVINO's CPU plugin, but slower: the CPU provider runs it, and the
    // status says why.
    let speech = engine.speak(VOICE, "Hello there.", 1.0).unwrap();
    assert!(speech.seconds() > 0.3, "{} s of audio", speech.seconds());
    let voice = status(VOICE);
    assert_eq!(voice.device, "cpu", "{}", voice.device_reason);
    assert!(
        voice.device_reason.starts_with(
            "ONNX Runtime's CPU provider, not OpenVINO on the CPU: Piper's voice ran 1.5 times \
             slower there"
        ),
        "{}",
        voice.device_reason
    );
}
