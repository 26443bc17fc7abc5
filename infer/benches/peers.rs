//! `make bench`: the inference engine against its Python peers, side by side in one run, on
//! the same inputs with the same thread counts. Each side runs in a process of its own, started
//! fresh for every cold start, so that its time to a first result and its peak memory are its
//! own. Prints medians and the ratios engine / peer (below 1 is better).
//!
//! - Embeddings: all-MiniLM-L6-v2, the engine's BERT encoder against sentence-transformers, 2
//!   threads, one sentence and a batch of 32 short ones.
//! - Voice activity: Silero VAD through ONNX Runtime, against silero-vad's own
//!   get_speech_timestamps on the same ONNX file, 1 thread (as silero-vad sets it), on espeak-ng
//!   speech with pauses.
//! - Transcription: Whisper tiny.en, candle (converted safetensors) against faster-whisper on
//!   the wheel's CTranslate2 files, float32, greedy, 2 threads, on the same speech; Whisper base
//!   (multilingual, both told the speech is English) likewise, from the two wheels it is split
//!   over.
//! - Speech: Piper's joe voice through ONNX Runtime against piper-tts on the same ONNX file (the
//!   engine's split at its decoder, as fetched), 2 threads, three sentences (espeak-ng as a
//!   program against piper-tts's built-in library).
//! - OCR: PP-OCRv4 through ONNX Runtime against rapidocr_onnxruntime on the same ONNX files,
//!   2 threads, on a page of six lines drawn with DejaVu Sans (PNG decoding included).
//! - Image description: SmolVLM-256M's architecture and size with random weights (no package
//!   ships its weights; the Python peer makes them, both sides read the same files), candle
//!   against transformers, float32, 2 threads: a picture to the first token (decoding, resizing,
//!   the vision encoder and the prompt's prefill) and each greedy token after it.
//!
//! The peers run in the Python of CARAPACE_BENCH_PYTHON, or out/venv-bench (scripts/bench-venv.sh
//! pins and installs them).

use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use carapace_infer::speech::Voice;
use carapace_infer::vision::{DEFAULT_QUESTION, Describer, argmax, decode_picture};
use carapace_infer::whisper::{TranscribeOptions, Transcriber};
use carapace_infer::{
    Embedder, OnnxRuntime, TextReader, VoiceActivity, decode_image, decode_wav, encode_wav,
};
use serde_json::{Value, json};

use carapace_fakes::page as drawn_page;

const EMBED_THREADS: usize = 2;
const VAD_THREADS: usize = 1;
const TRANSCRIPTION_THREADS: usize = 2;
const SPEECH_THREADS: usize = 2;
/// What the speech rows say: three sentences an agent might send as a voice note.
const SPOKEN: &str = "Good morning. The kettle is on and the post has come. Remind me to call \
                      the plumber about the kitchen tap tomorrow.";
const OCR_THREADS: usize = 2;
const VLM_THREADS: usize = 2;
/// A picture takes seconds on two threads: fewer runs, one cold start.
const VLM_RUNS: usize = 3;
const VLM_STARTS: usize = 1;
/// Greedy tokens after the prefill, as peers.py's VLM_STEPS.
const VLM_STEPS: usize = 16;
/// Warm runs per side, and fresh processes per side (cold starts).
const RUNS: usize = 9;
const STARTS: usize = 3;
/// The batch of 32 is made of sentences of at most this many word pieces.
const SHORT_PIECES: usize = 64;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn median_ms(work: &mut dyn FnMut()) -> f64 {
    median_ms_of(RUNS, work)
}

fn median_ms_of(runs: usize, work: &mut dyn FnMut()) -> f64 {
    work(); // warm-up, not counted
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut samples)
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The engine's side, in this process (started by `main` with `--side`).
fn engine_side(kind: &str, model: &Path, data: &Path) -> Value {
    match kind {
        "embeddings" => {
            let threads = NonZeroUsize::new(EMBED_THREADS).unwrap();
            let batches: Value =
                serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
            let texts = |key: &str| -> Vec<String> {
                serde_json::from_value(batches[key].clone()).unwrap()
            };
            let (one, many) = (texts("one"), texts("thirty_two"));
            let one: Vec<&str> = one.iter().map(String::as_str).collect();
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            let embedder = Embedder::load(model, threads).unwrap();
            embedder.embed(&one).unwrap();
            println!("first");
            let batch1 = median_ms(&mut || drop(embedder.embed(&one).unwrap()));
            let batch32 = median_ms(&mut || drop(embedder.embed(&many).unwrap()));
            json!({"batch1_ms": batch1, "batch32_ms": batch32})
        }
        "transcription" => {
            let threads = NonZeroUsize::new(TRANSCRIPTION_THREADS).unwrap();
            let samples = decode_wav(&std::fs::read(data).unwrap()).unwrap();
            let whisper = Transcriber::load(model, threads).unwrap();
            // English, as the peer is told (a multilingual model would tell it otherwise).
            let options = TranscribeOptions {
                language: Some("en".into()),
                prompt: None,
            };
            let text = whisper.transcribe(&samples, &options).unwrap().text;
            println!("first");
            let run = median_ms(&mut || drop(whisper.transcribe(&samples, &options).unwrap()));
            json!({"run_ms": run, "text": text})
        }
        "speech" => {
            let library = PathBuf::from(std::env::var_os("CARAPACE_BENCH_ORT").unwrap());
            let onnx =
                OnnxRuntime::load(&library, NonZeroUsize::new(SPEECH_THREADS).unwrap()).unwrap();
            let text = std::fs::read_to_string(data).unwrap();
            let mut voice = Voice::load(&onnx, model).unwrap();
            let seconds = voice.speak(&text, 1.0).unwrap().seconds();
            println!("first");
            let run = median_ms(&mut || drop(voice.speak(&text, 1.0).unwrap()));
            json!({"run_ms": run, "seconds": seconds})
        }
        "ocr" => {
            let library = PathBuf::from(std::env::var_os("CARAPACE_BENCH_ORT").unwrap());
            let onnx =
                OnnxRuntime::load(&library, NonZeroUsize::new(OCR_THREADS).unwrap()).unwrap();
            let png = std::fs::read(data).unwrap();
            let mut reader = TextReader::load(&onnx, model).unwrap();
            let mut read = || {
                let lines = reader.read(&decode_image(&png).unwrap()).unwrap();
                lines
                    .iter()
                    .map(|line| line.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let text = read();
            println!("first");
            let run = median_ms(&mut || drop(read()));
            json!({"run_ms": run, "text": text})
        }
        "vlm" => {
            let threads = NonZeroUsize::new(VLM_THREADS).unwrap();
            let describer = Describer::load(model, threads).unwrap();
            let model = describer.model();
            let prefill = || {
                let image = decode_picture(&std::fs::read(data).unwrap()).unwrap();
                let pixels = describer.pixel_values(&image);
                let ids = describer.prompt_ids(DEFAULT_QUESTION).unwrap();
                let features = model.image_features(&pixels).unwrap();
                model.prefill(&ids, &features).unwrap()
            };
            let steps = |(mut logits, mut cache): (Vec<f32>, _)| {
                let (mut picked, mut times) = (Vec::new(), Vec::new());
                for _ in 0..VLM_STEPS {
                    let token = argmax(&logits);
                    picked.push(token);
                    let started = Instant::now();
                    logits = model.step(token, &mut cache).unwrap();
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                }
                (picked, times)
            };
            let first = prefill();
            println!("first");
            let (picked, _) = steps(first);
            let prefill_ms = median_ms_of(VLM_RUNS, &mut || drop(prefill()));
            let mut step_ms: Vec<f64> = (0..3).flat_map(|_| steps(prefill()).1).collect();
            json!({"prefill_ms": prefill_ms, "step_ms": median(&mut step_ms), "ids": picked})
        }
        _ => {
            let library = PathBuf::from(std::env::var_os("CARAPACE_BENCH_ORT").unwrap());
            let onnx =
                OnnxRuntime::load(&library, NonZeroUsize::new(VAD_THREADS).unwrap()).unwrap();
            let samples = decode_wav(&std::fs::read(data).unwrap()).unwrap();
            let mut vad = VoiceActivity::load(&onnx, model).unwrap();
            let found = vad.speech_segments(&samples).unwrap();
            println!("first");
            let run = median_ms(&mut || drop(vad.speech_segments(&samples).unwrap()));
            let segments: Vec<[usize; 2]> = found.iter().map(|s| [s.start, s.end]).collect();
            json!({"run_ms": run, "segments": segments})
        }
    }
}

/// One fresh process: its time from spawn to "first", and its final JSON line.
fn run_side(mut command: Command) -> (f64, Value) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting a side");
    let mut first = None;
    let mut last = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "first" && first.is_none() {
            first = Some(started.elapsed());
        }
        last = line;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{command:?} failed: {status}");
    let first = first.unwrap_or(Duration::MAX).as_secs_f64() * 1e3;
    (
        first,
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{last:?}: {e}")),
    )
}

struct Sides {
    cold_ms: [f64; 2],
    results: [Value; 2],
}

fn compare(
    kind: &str,
    model_engine: &Path,
    model_peer: &Path,
    data: &Path,
    python: &Path,
) -> Sides {
    let threads = match kind {
        "embeddings" => EMBED_THREADS,
        "transcription" => TRANSCRIPTION_THREADS,
        "speech" => SPEECH_THREADS,
        "ocr" => OCR_THREADS,
        "vlm" => VLM_THREADS,
        _ => VAD_THREADS,
    };
    let (runs, starts) = match kind {
        "vlm" => (VLM_RUNS, VLM_STARTS),
        _ => (RUNS, STARTS),
    };
    let mut cold = [Vec::new(), Vec::new()];
    let mut results = [Value::Null, Value::Null];
    for _ in 0..starts {
        let mut engine = Command::new(std::env::current_exe().unwrap());
        engine.args(["--side", kind]).arg(model_engine).arg(data);
        engine.env("RAYON_NUM_THREADS", threads.to_string());
        engine.env("CANDLE_NUM_THREADS", threads.to_string());
        let mut peer = Command::new(python);
        peer.arg(manifest().join("benches/peers.py"))
            .arg(kind)
            .arg(model_peer)
            .arg(data)
            .arg(threads.to_string())
            .arg(runs.to_string());
        for (i, command) in [engine, peer].into_iter().enumerate() {
            let (first, result) = run_side(command);
            cold[i].push(first);
            results[i] = result;
        }
    }
    Sides {
        cold_ms: [median(&mut cold[0]), median(&mut cold[1])],
        results,
    }
}

/// The engine's side of `kind` with the ONNX Runtime build `library`, started `STARTS` times:
/// the median start to first result, and the last run's JSON.
fn engine_with(kind: &str, model: &Path, data: &Path, library: &Path) -> (f64, Value) {
    let mut cold = Vec::new();
    let mut result = Value::Null;
    for _ in 0..STARTS {
        let mut engine = Command::new(std::env::current_exe().unwrap());
        engine.args(["--side", kind]).arg(model).arg(data);
        engine.env("CARAPACE_BENCH_ORT", library);
        let (first, last) = run_side(engine);
        cold.push(first);
        result = last;
    }
    (median(&mut cold), result)
}

/// OCR and Piper on the OpenVINO build of ONNX Runtime (its CPU plugin here; the Intel GPU where
/// the machine has one) against ONNX Runtime's own CPU provider: the same engine code, the same
/// threads and inputs, so the ratio is the runtime's alone.
fn openvino_against_the_default(dir: &Path, default: &Path, pp_ocr: &Path, piper: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let openvino = match runtime.block_on(carapace_infer::fetch_openvino_runtime()) {
        Ok(library) => library,
        Err(error) => {
            println!("OpenVINO: not measured: {error}");
            return;
        }
    };
    let page = dir.join("openvino-page.png");
    drawn_page::page(900, 360, &drawn_page::sample_lines())
        .save(&page)
        .unwrap();
    let spoken = dir.join("openvino-spoken.txt");
    std::fs::write(&spoken, SPOKEN).unwrap();
    println!(
        "OpenVINO (onnxruntime-openvino) against ONNX Runtime's CPU provider, the same engine code \
         ({OCR_THREADS} threads for OCR, {SPEECH_THREADS} for speech; each model where the engine \
         places it: Piper stays off OpenVINO's CPU plugin, which ran it 1.47x slower): medians of \
         {RUNS} warm runs, {STARTS} cold starts each"
    );
    println!(
        "  {:<28} {:>14} {:>14} {:>8}",
        "", "openvino", "default", "ratio"
    );
    for (kind, model, data, what) in [
        ("ocr", pp_ocr, &page, "OCR, text of the page"),
        ("speech", piper, &spoken, "speech, three sentences"),
    ] {
        let (cold_vino, vino) = engine_with(kind, model, data, &openvino);
        let (cold_default, plain) = engine_with(kind, model, data, default);
        let ms = |v: &Value| v["run_ms"].as_f64().unwrap();
        let mib = |v: &Value| v["peak_kib"].as_f64().unwrap() / 1024.0;
        row(what, ms(&vino), ms(&plain), "ms");
        row("  start to first result", cold_vino, cold_default, "ms");
        row("  peak memory", mib(&vino), mib(&plain), "MiB");
        if kind == "ocr" {
            let same = vino["text"] == plain["text"];
            println!(
                "  text: {} (openvino {}, default {})",
                if same { "identical" } else { "DIFFERENT" },
                vino["text"],
                plain["text"]
            );
        }
    }
}

fn row(what: &str, engine: f64, peer: f64, unit: &str) {
    println!(
        "  {what:<28} {engine:>10.1} {unit:<3} {peer:>10.1} {unit:<3} {:>7.2}x",
        engine / peer
    );
}

fn python() -> PathBuf {
    let python = std::env::var_os("CARAPACE_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join("../out/venv-bench/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `make bench` installs the Python peers (scripts/bench-venv.sh)",
        python.display()
    );
    python
}

/// The benchmark's inputs, written once into `dir`.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest().join("tests/data/reference.json")).unwrap(),
    )
    .unwrap();
    let sentences: Vec<String> = serde_json::from_value(reference["sentences"].clone()).unwrap();
    let pieces: Vec<usize> = serde_json::from_value(reference["pieces"].clone()).unwrap();
    let short: Vec<&String> = sentences
        .iter()
        .zip(&pieces)
        .filter(|(_, n)| **n <= SHORT_PIECES)
        .map(|(s, _)| s)
        .collect();
    let batches = json!({
        "one": [sentences[3]],
        "thirty_two": short.iter().cycle().take(32).collect::<Vec<_>>(),
    });
    let sentences_json = dir.join("sentences.json");
    std::fs::write(&sentences_json, batches.to_string()).unwrap();

    // Speech with pauses, about 20 s, at 16 kHz (both sides read the same samples).
    let mut audio = vec![0f32; 16_000];
    for text in [
        "good morning, the kettle is on and the post has come",
        "remind me to call the plumber about the kitchen tap tomorrow",
        "what is the weather going to be like this afternoon",
    ] {
        let wav = dir.join("speech.wav");
        let status = Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&wav)
            .arg(text)
            .status()
            .expect("espeak-ng");
        assert!(status.success());
        audio.extend(decode_wav(&std::fs::read(&wav).unwrap()).unwrap());
        audio.extend(vec![0f32; 24_000]);
    }
    let wav_16k = dir.join("speech-16k.wav");
    std::fs::write(&wav_16k, encode_wav(&audio, 16_000)).unwrap();
    (sentences_json, wav_16k)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--side") {
        // As carapace-infer's main does.
        carapace_infer::reuse_freed_memory();
        let result = engine_side(
            &args[at + 1],
            Path::new(&args[at + 2]),
            Path::new(&args[at + 3]),
        );
        let mut result = result;
        result["peak_kib"] = json!(peak_kib());
        println!("{result}");
        return;
    }
    if args.iter().any(|a| a == "--bench" || a == "--test") && args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench --bench peers -- transcription ocr`: only those capabilities (any of
    // embeddings, vad, transcription, transcription-base (Whisper base, multilingual), speech,
    // ocr, vlm, and openvino: OCR and speech on the
    // OpenVINO build against the default one); none named: all of them.
    let only: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.contains(&name);
    // Only the sides against Python peers need the bench's virtual environment.
    let peers = [
        "embeddings",
        "vad",
        "transcription",
        "transcription-base",
        "speech",
        "ocr",
        "vlm",
    ];
    let python = match peers.iter().any(|kind| wanted(kind)) {
        true => python(),
        false => PathBuf::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (minilm, silero, library, piper, pp_ocr) = runtime.block_on(async {
        (
            carapace_infer::fetch_pinned("all-minilm-l6-v2")
                .await
                .unwrap(),
            carapace_infer::fetch_pinned("silero-vad").await.unwrap(),
            carapace_infer::fetch_onnx_runtime().await.unwrap(),
            carapace_infer::fetch_pinned("piper-en-us-joe-medium")
                .await
                .unwrap(),
            carapace_infer::fetch_pinned("pp-ocrv4").await.unwrap(),
        )
    });
    // The wheels a converted model came from, kept in the cache beside it: the peer reads
    // their CTranslate2 files.
    let lock = carapace_infer::ModelLock::pinned().unwrap();
    let wheels_of = |name: &str| {
        let cache = carapace_infer::models_dir().unwrap();
        let wheels = lock.model(name).unwrap().wheels();
        let paths = wheels.iter().map(|wheel| cache.join(wheel.file_name()));
        PathBuf::from(std::env::join_paths(paths).unwrap())
    };
    // SAFETY: set before any side process starts; this process has no other threads reading
    // the environment (the runtime above is current-thread and idle).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("CARAPACE_BENCH_ORT", &library)
    };
    let dir = tempfile::tempdir().unwrap();
    let (sentences, wav) = inputs(dir.path());

    if !python.as_os_str().is_empty() {
        println!(
            "local inference against the Python peers: medians of {RUNS} warm runs, {STARTS} cold starts each"
        );
        println!(
            "  {:<28} {:>14} {:>14} {:>8}",
            "", "carapace", "peer", "ratio"
        );
    }

    let ms = |sides: &Sides, key: &str, i: usize| sides.results[i][key].as_f64().unwrap();
    let mib = |sides: &Sides, i: usize| sides.results[i]["peak_kib"].as_f64().unwrap() / 1024.0;
    if wanted("embeddings") {
        let embed = compare("embeddings", &minilm, &minilm, &sentences, &python);
        println!(
            "embeddings, {EMBED_THREADS} threads: the engine's BERT against {}",
            embed.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "one sentence",
            ms(&embed, "batch1_ms", 0),
            ms(&embed, "batch1_ms", 1),
            "ms",
        );
        row(
            "32 sentences",
            ms(&embed, "batch32_ms", 0),
            ms(&embed, "batch32_ms", 1),
            "ms",
        );
        row(
            "start to first embedding",
            embed.cold_ms[0],
            embed.cold_ms[1],
            "ms",
        );
        row("peak memory", mib(&embed, 0), mib(&embed, 1), "MiB");
    }

    if wanted("vad") {
        let vad = compare(
            "vad",
            &silero,
            &silero.join("silero_vad.onnx"),
            &wav,
            &python,
        );
        println!(
            "voice activity, {VAD_THREADS} thread, {:.1} s of speech and pauses: ONNX Runtime against {}",
            decode_wav(&std::fs::read(&wav).unwrap()).unwrap().len() as f64 / 16_000.0,
            vad.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "segments of the whole audio",
            ms(&vad, "run_ms", 0),
            ms(&vad, "run_ms", 1),
            "ms",
        );
        row(
            "start to first segments",
            vad.cold_ms[0],
            vad.cold_ms[1],
            "ms",
        );
        row("peak memory", mib(&vad, 0), mib(&vad, 1), "MiB");
        let same = vad.results[0]["segments"] == vad.results[1]["segments"];
        println!(
            "  segments: {} (engine {}, peer {})",
            if same { "identical" } else { "DIFFERENT" },
            vad.results[0]["segments"],
            vad.results[1]["segments"]
        );
    }

    let transcriptions = [
        ("transcription", "whisper-tiny-en", "Whisper tiny.en"),
        (
            "transcription-base",
            "whisper-base",
            "Whisper base (multilingual, told English)",
        ),
    ];
    for (kind, name, model) in transcriptions {
        if !wanted(kind) {
            continue;
        }
        let engine_dir = runtime
            .block_on(carapace_infer::fetch_pinned(name))
            .unwrap();
        let peer_files = wheels_of(name);
        let speech = compare("transcription", &engine_dir, &peer_files, &wav, &python);
        println!(
            "transcription, {TRANSCRIPTION_THREADS} threads, the same speech: {model} on candle against {}",
            speech.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "text of the whole audio",
            ms(&speech, "run_ms", 0),
            ms(&speech, "run_ms", 1),
            "ms",
        );
        row(
            "start to first text",
            speech.cold_ms[0],
            speech.cold_ms[1],
            "ms",
        );
        row("peak memory", mib(&speech, 0), mib(&speech, 1), "MiB");
        println!(
            "  text: engine {}, peer {}",
            speech.results[0]["text"], speech.results[1]["text"]
        );
    }

    if wanted("speech") {
        let spoken = dir.path().join("spoken.txt");
        std::fs::write(&spoken, SPOKEN).unwrap();
        // The peer reads the voice from the wheel: the engine's folder holds it split.
        let piper_wheel = wheels_of("piper-en-us-joe-medium");
        let voice = compare("speech", &piper, &piper_wheel, &spoken, &python);
        println!(
            "speech, {SPEECH_THREADS} threads, three sentences ({:.1} s of audio): Piper's joe voice on ONNX Runtime against {}",
            voice.results[0]["seconds"].as_f64().unwrap_or(0.0),
            voice.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "audio of the three sentences",
            ms(&voice, "run_ms", 0),
            ms(&voice, "run_ms", 1),
            "ms",
        );
        row(
            "start to first audio",
            voice.cold_ms[0],
            voice.cold_ms[1],
            "ms",
        );
        row("peak memory", mib(&voice, 0), mib(&voice, 1), "MiB");
    }

    if wanted("ocr") {
        let page = dir.path().join("page.png");
        drawn_page::page(900, 360, &drawn_page::sample_lines())
            .save(&page)
            .unwrap();
        let ocr = compare("ocr", &pp_ocr, &pp_ocr, &page, &python);
        println!(
            "OCR, {OCR_THREADS} threads, a 900 x 360 page of six lines: PP-OCRv4 on ONNX Runtime against {}",
            ocr.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "text of the page",
            ms(&ocr, "run_ms", 0),
            ms(&ocr, "run_ms", 1),
            "ms",
        );
        row("start to first text", ocr.cold_ms[0], ocr.cold_ms[1], "ms");
        row("peak memory", mib(&ocr, 0), mib(&ocr, 1), "MiB");
        // Each side's lines against the drawn ones, spaces aside: the engine keeps the spaces
        // between words that rapidocr drops.
        let drawn = drawn_page::sample_lines();
        let letters =
            |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
        let as_drawn = |i: usize| {
            let text = ocr.results[i]["text"].as_str().unwrap_or_default();
            text.lines()
                .zip(&drawn)
                .filter(|(read, line)| letters(read) == letters(line.text))
                .count()
        };
        println!(
            "  lines read as drawn, spaces aside: engine {} of {}, peer {} (engine {}, peer {})",
            as_drawn(0),
            drawn.len(),
            as_drawn(1),
            ocr.results[0]["text"],
            ocr.results[1]["text"]
        );
    }

    if wanted("openvino") {
        openvino_against_the_default(dir.path(), &library, &pp_ocr, &piper);
    }

    if wanted("vlm") {
        // SmolVLM-256M's shapes with random weights, made by the peer's transformers.
        let smolvlm = dir.path().join("smolvlm-256m-random");
        let status = Command::new(&python)
            .arg(manifest().join("benches/peers.py"))
            .arg("vlm-model")
            .arg(&smolvlm)
            .arg(manifest().join("tests/data/vlm/tokenizer.json"))
            .stdout(Stdio::null())
            .status()
            .expect("making the random SmolVLM");
        assert!(status.success(), "peers.py vlm-model failed");
        let picture = manifest().join("tests/data/vlm/image.png");
        let vlm = compare("vlm", &smolvlm, &smolvlm, &picture, &python);
        println!(
            "image description, {VLM_THREADS} threads, SmolVLM-256M's shapes (random weights), one 512 × 512 \
         image, {VLM_STEPS} greedy tokens: candle against {}",
            vlm.results[1]["peer"].as_str().unwrap_or("?")
        );
        row(
            "picture to first token",
            ms(&vlm, "prefill_ms", 0),
            ms(&vlm, "prefill_ms", 1),
            "ms",
        );
        row(
            "each next token",
            ms(&vlm, "step_ms", 0),
            ms(&vlm, "step_ms", 1),
            "ms",
        );
        row("start to first token", vlm.cold_ms[0], vlm.cold_ms[1], "ms");
        row("peak memory", mib(&vlm, 0), mib(&vlm, 1), "MiB");
        let same = vlm.results[0]["ids"] == vlm.results[1]["ids"];
        println!(
            "  greedy ids: {} (engine {}, peer {})",
            if same { "identical" } else { "DIFFERENT" },
            vlm.results[0]["ids"],
            vlm.results[1]["ids"]
        );
    }
}
