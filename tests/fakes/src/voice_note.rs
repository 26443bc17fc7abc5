//! What a person sends to a box's IM account when they speak: a voice note in Ogg Opus, as the
//! Telegram and Feishu apps record it. espeak-ng speaks the text and libopus (opusenc, from
//! opus-tools; `make deps` installs both) encodes it at a voice note's 24 kbit/s.

use std::process::Command;

/// `text`, spoken and encoded as a voice note. Panics with what to install when a tool is
/// missing: these are test inputs.
pub fn voice_note(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let (wav, ogg) = (dir.path().join("speech.wav"), dir.path().join("note.ogg"));
    let run = |command: &mut Command| {
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("{command:?}: {e} (make deps installs it)"));
        assert!(status.success(), "{command:?}: {status}");
    };
    run(Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg(text));
    run(Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24"])
        .arg(&wav)
        .arg(&ogg));
    std::fs::read(&ogg).expect("the voice note opusenc wrote")
}
