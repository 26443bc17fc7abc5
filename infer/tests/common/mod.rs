//! What the engine's tests share: speech to test on.

use std::process::Command;

/// `text` spoken by espeak-ng: a 22,050 Hz WAV as it streams it to a pipe (its header carries
/// a placeholder length, which the engine's decoder reads to the end).
pub fn espeak_wav(text: &str) -> Vec<u8> {
    espeak_wav_in("en", text)
}

/// `text` spoken by espeak-ng's `voice` ("de", "fr"), as [`espeak_wav`].
pub fn espeak_wav_in(voice: &str, text: &str) -> Vec<u8> {
    let output = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "--stdout", text])
        .output()
        .expect("espeak-ng runs (make deps installs it)");
    assert!(output.status.success(), "espeak-ng: {output:?}");
    output.stdout
}
