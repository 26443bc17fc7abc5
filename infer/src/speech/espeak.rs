//! The espeak-ng program, run as a process of its own for each text: its IPA phonemes, the
//! ones piper-tts takes from espeak-ng's library. espeak-ng is GPL; a program run beside the
//! engine is not linked into it, so the engine stays under its own license.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The program, found on PATH (Debian's and the image's `espeak-ng` package).
pub const ESPEAK_NG: &str = "espeak-ng";

fn failed(reason: String) -> Error {
    Error::Phonemize { reason }
}

/// The IPA phonemes of each clause espeak-ng reads in `text` with `voice`, one string per
/// clause, without the clause's punctuation (espeak-ng prints none).
pub fn ipa_clauses(voice: &str, text: &str) -> Result<Vec<String>> {
    // The text goes through stdin: an argument starting with '-' would be read as an option.
    let mut child = Command::new(ESPEAK_NG)
        .args(["-q", "--ipa", "-v", voice, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(format!(
                "{ESPEAK_NG} did not start ({e}); install the espeak-ng program (Debian's \
                 espeak-ng package)"
            ))
        })?;
    // espeak-ng reads all of stdin before it writes, so writing first cannot deadlock.
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("{ESPEAK_NG} did not finish: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(failed(format!(
            "{ESPEAK_NG} -v {voice} failed ({}): {}",
            output.status,
            stderr.trim()
        )));
    }
    if let Some(Err(e)) = written {
        return Err(failed(format!("writing the text to {ESPEAK_NG}: {e}")));
    }
    let stdout = String::from_utf8(output.stdout)
        .map_err(|_| failed(format!("{ESPEAK_NG} wrote phonemes that are not UTF-8")))?;
    Ok(stdout.lines().map(|line| line.trim().to_string()).collect())
}
