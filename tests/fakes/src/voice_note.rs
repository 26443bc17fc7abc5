//! What a person sends to a box's IM account when they speak: a voice note in Ogg Opus, as the
//! Telegram and Feishu apps record it. espeak-ng speaks the text and libopus (opusenc, from
//! opus-tools; `make deps` installs both) encodes it at a voice note's 24 kbit/s.

use std::process::Command;

/// `text`, spoken and encoded as a voice note. Panics with what to install when a tool is
/// missing: these are test inputs.
pub fn voice_note(text: &str) -> Vec<u8> {
    voice_note_in("en", text)
}

/// As [`voice_note`], spoken by espeak-ng's `voice` ("de" for German).
pub fn voice_note_in(voice: &str, text: &str) -> Vec<u8> {
    encoded(|wav| {
        run(Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(wav)
            .arg(text));
    })
}

/// A voice note of `seconds` of loud hiss and no one speaking (a note sent from a pocket):
/// white noise with an RMS near a fifth of full scale, the same bytes every time.
pub fn noise_voice_note(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 16_000;
    encoded(|wav| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(wav, spec).expect("the noise WAV");
        // A linear congruential generator: noise without a dependency, and reproducible.
        let mut state: u32 = 0x2545_f491;
        for _ in 0..seconds * RATE {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let uniform = (state >> 16) as i32 - 32_768;
            writer
                .write_sample((uniform / 3) as i16)
                .expect("a noise sample");
        }
        writer.finalize().expect("the noise WAV");
    })
}

/// The voice note opusenc makes of the WAV that `write_wav` writes.
fn encoded(write_wav: impl FnOnce(&std::path::Path)) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let (wav, ogg) = (dir.path().join("audio.wav"), dir.path().join("note.ogg"));
    write_wav(&wav);
    run(Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24"])
        .arg(&wav)
        .arg(&ogg));
    std::fs::read(&ogg).expect("the voice note opusenc wrote")
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (make deps installs it)"));
    assert!(status.success(), "{command:?}: {status}");
}

/// Lower case, letters, digits and single spaces: what a transcript is compared by (Whisper
/// capitalises and punctuates as it likes).
pub fn normalised(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
