//! Voice notes as the IM apps send them (Telegram's and Feishu's are Ogg Opus), decoded by
//! opus-pure (pure Rust, BSD-3) straight to the 16 kHz the speech models take: Opus decodes at
//! any of its rates, so no resampling is needed. The header's output gain is applied and the
//! encoder's delay and the last page's padding are trimmed, as RFC 7845 asks.

use std::io::Cursor;

use opus_pure::{MAX_PACKET_SAMPLES, OggOpusReader, Trim};

use crate::audio::{MAX_AUDIO_SECONDS, SPEECH_SAMPLE_RATE};
use crate::error::{Error, Result};

/// The first bytes of every Ogg page.
pub const OGG_MAGIC: &[u8] = b"OggS";

fn bad(what: &str, error: impl std::fmt::Display) -> Error {
    Error::BadAudio {
        reason: format!("{what} ({error}); send Ogg Opus as the IM apps record it, or WAV"),
    }
}

/// Decodes an Ogg Opus file to 16 kHz mono samples (channels averaged).
pub fn decode_ogg_opus(bytes: &[u8]) -> Result<Vec<f32>> {
    let mut reader =
        OggOpusReader::new(Cursor::new(bytes)).map_err(|e| bad("not an Ogg Opus stream", e))?;
    let head = reader.head().clone();
    let channels = usize::from(head.channel_count).max(1);
    let rate = SPEECH_SAMPLE_RATE as i32;
    let mut decoder = head
        .decoder(rate)
        .map_err(|e| bad("an Opus header the decoder refuses", e))?;
    let mut trim = Trim::new(&head, rate, channels).map_err(|e| bad("an Opus header", e))?;
    let mut block = vec![0f32; MAX_PACKET_SAMPLES * channels];
    let most = MAX_AUDIO_SECONDS as usize * SPEECH_SAMPLE_RATE as usize;
    let mut mono = Vec::new();
    for packet in reader.packets() {
        let packet = packet.map_err(|e| bad("a damaged Ogg page", e))?;
        let decoded = decoder
            .decode(&packet.data, MAX_PACKET_SAMPLES, &mut block)
            .map_err(|e| bad("a damaged Opus packet", e))?;
        let kept = trim.keep(&packet, &block[..decoded * channels]);
        mono.extend(
            kept.chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() > most {
            return Err(Error::BadAudio {
                reason: format!("longer than {MAX_AUDIO_SECONDS} s; send it in parts"),
            });
        }
    }
    Ok(mono)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ogg_file_that_is_not_opus_is_refused_with_what_to_send() {
        match decode_ogg_opus(b"OggS\0\x02 a broken page") {
            Err(Error::BadAudio { reason }) => {
                assert!(reason.starts_with("not an Ogg Opus stream"), "{reason}");
                assert!(reason.ends_with("send Ogg Opus as the IM apps record it, or WAV"));
            }
            other => panic!("expected BadAudio, got {other:?}"),
        }
    }
}
