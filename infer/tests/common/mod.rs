//! What the engine's tests share: speech to test on.

use std::process::Command;

/// `text` spoken by espeak-ng: a 22,050 Hz WAV as it streams it to a pipe (its header carries
/// a placeholder length, which the engine's decoder reads to the end).
pub fn espeak_wav(text: &str) -> Vec<u8> {
    let output = Command::new("espeak-ng")
        .args(["-s", "150", "--stdout", text])
        .output()
        .expect("espeak-ng runs (make deps installs it)");
    assert!(output.status.success(), "espeak-ng: {output:?}");
    output.stdout
}

/// `text` as a voice note like the IM apps send: espeak-ng's speech encoded by libopus
/// (opusenc, from opus-tools) into Ogg Opus at a voice note's 24 kbit/s.
#[allow(dead_code)] // Not every test binary that includes this module sends voice notes.
pub fn voice_note(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (wav, ogg) = (dir.path().join("speech.wav"), dir.path().join("note.ogg"));
    std::fs::write(&wav, espeak_wav(text)).unwrap();
    let status = Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24"])
        .arg(&wav)
        .arg(&ogg)
        .status()
        .expect("opusenc runs (make deps installs opus-tools)");
    assert!(status.success(), "opusenc: {status}");
    std::fs::read(&ogg).unwrap()
}
