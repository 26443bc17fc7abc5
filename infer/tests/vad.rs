//! Silero VAD through ONNX Runtime (both from their pinned wheels, fetched into the cache on
//! the first run) on speech the test makes with espeak-ng and places at known times.

mod common;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::OnceLock;

use carapace_infer::{
    Error, OnnxRuntime, SPEECH_SAMPLE_RATE, SpeechSegment, VoiceActivity, decode_wav,
};

const RATE: f64 = SPEECH_SAMPLE_RATE as f64;

fn fetched() -> &'static (OnnxRuntime, PathBuf) {
    static FETCHED: OnceLock<(OnnxRuntime, PathBuf)> = OnceLock::new();
    FETCHED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (library, vad) = runtime.block_on(async {
            (
                carapace_infer::fetch_onnx_runtime().await.unwrap(),
                carapace_infer::fetch_pinned("silero-vad").await.unwrap(),
            )
        });
        let onnx = OnnxRuntime::load(&library, NonZeroUsize::new(1).unwrap()).unwrap();
        (onnx, vad)
    })
}

fn vad() -> VoiceActivity {
    let (onnx, dir) = fetched();
    VoiceActivity::load(onnx, dir).unwrap()
}

/// `text` spoken by espeak-ng, at 16 kHz, with espeak's leading and trailing silence cut off
/// so that the clip is speech from its first sample to its last.
fn speak(text: &str) -> Vec<f32> {
    let samples = decode_wav(&common::espeak_wav(text)).unwrap();
    let loud = |s: &&f32| s.abs() > 0.02;
    let first = samples.iter().position(|s| loud(&s)).unwrap();
    let last = samples.iter().rposition(|s| loud(&s)).unwrap();
    samples[first..=last].to_vec()
}

/// Quiet white noise (about -50 dBFS), the same every run: a room, not digital silence.
fn room(seconds: f64, seed: &mut u32) -> Vec<f32> {
    (0..(seconds * RATE) as usize)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (*seed as f32 / u32::MAX as f32 - 0.5) * 0.006
        })
        .collect()
}

fn seconds(segments: &[SpeechSegment]) -> Vec<(f64, f64)> {
    segments
        .iter()
        .map(|s| (s.start_seconds(), s.end_seconds()))
        .collect()
}

#[test]
fn speech_placed_at_known_times_is_found_there_and_the_silence_between_is_not_speech() {
    let mut seed = 7;
    let mut audio = room(1.0, &mut seed);
    let mut spoken = Vec::new();
    for (i, text) in [
        "the kettle is on the stove",
        "please remind me to call the plumber",
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            audio.extend(room(1.5, &mut seed));
        }
        let start = audio.len() as f64 / RATE;
        audio.extend(speak(text));
        spoken.push((start, audio.len() as f64 / RATE));
    }
    audio.extend(room(1.0, &mut seed));

    let found = seconds(&vad().speech_segments(&audio).unwrap());
    eprintln!("spoken at {spoken:.3?} s, found {found:.3?} s");
    assert!(!found.is_empty(), "no speech found; spoken at {spoken:?}");
    // Every segment lies within a spoken stretch, give or take the 30 ms pad and one 32 ms
    // window; in particular nothing starts in the 1.5 s between the two sentences.
    let slack = 0.03 + 0.032 + 0.02;
    for &(start, end) in &found {
        assert!(
            spoken
                .iter()
                .any(|&(s, e)| start >= s - slack && end <= e + slack + 0.1),
            "segment {start:.3}-{end:.3} s is outside the speech at {spoken:?} (found {found:?})"
        );
    }
    // Each spoken stretch is mostly covered, and its first word is caught within 100 ms.
    for &(s, e) in &spoken {
        let covered: f64 = found
            .iter()
            .map(|&(a, b)| (b.min(e) - a.max(s)).max(0.0))
            .sum();
        assert!(
            covered >= 0.85 * (e - s),
            "only {covered:.2} s of the speech at {s:.2}-{e:.2} s found: {found:?}"
        );
        let first = found.iter().find(|&&(a, b)| b > s && a < e).unwrap();
        assert!(
            first.0 <= s + 0.1,
            "speech at {s:.3} s found from {:.3} s",
            first.0
        );
    }
}

#[test]
fn a_quiet_room_without_speech_has_no_segments() {
    let mut seed = 11;
    let audio = room(5.0, &mut seed);
    let found = vad().speech_segments(&audio).unwrap();
    assert!(found.is_empty(), "speech found in room noise: {found:?}");
    // The model did run: one probability per 32 ms window, all low.
    let probabilities = vad().probabilities(&audio).unwrap();
    assert_eq!(probabilities.len(), (5.0 * RATE) as usize / 512 + 1);
    assert!(probabilities.iter().all(|&p| p < 0.35), "{probabilities:?}");
}

#[test]
fn a_model_file_that_is_not_onnx_is_refused_with_its_path() {
    let (onnx, _) = fetched();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("silero_vad.onnx");
    std::fs::write(&bad, b"this is not an ONNX protobuf").unwrap();
    match VoiceActivity::load(onnx, dir.path()) {
        Err(Error::OnnxModel { path, reason }) => {
            assert_eq!(path, bad);
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("expected OnnxModel, got {other}"),
        Ok(_) => panic!("a file that is not ONNX loaded"),
    }
    // A missing file is named as missing, not as a broken model.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        VoiceActivity::load(onnx, empty.path()),
        Err(Error::MissingModelFile { .. })
    ));
}
