//! Voice notes as the IM apps send them (Telegram's and Feishu's are Ogg Opus), decoded by
//! opus-pure (pure Rust, BSD-3) straight to the 16 kHz the speech models take: Opus decodes at
//! any of its rates, so no resampling is needed. The header's output gain is applied and the
//! encoder's delay and the last page's padding are trimmed, as RFC 7845 asks.
//!
//! And the voice notes the engine speaks, encoded by the same crate: mono at 48 kHz (the rate
//! Opus codes at; the voice's samples are resampled to it), tuned for speech, at a voice note's
//! bitrate, ending exactly where the speech ends.

use std::io::Cursor;

use opus_pure::{
    Application, MAX_PACKET_BYTES, MAX_PACKET_SAMPLES, OggOpusReader, OggOpusWriter, OpusEncoder,
    OpusHead, Trim,
};

use crate::audio::{MAX_AUDIO_SECONDS, SPEECH_SAMPLE_RATE, resample};
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

/// The bitrate of the voice notes the engine writes: what the IM apps record speech at, where
/// Opus speech is clear (Whisper hears it as well as the WAV).
pub const VOICE_NOTE_BITRATE: i32 = 24_000;

/// The rate the engine's voice notes are encoded at.
const OPUS_RATE: u32 = 48_000;
/// 20 ms frames, the size the IM apps use.
const FRAME: usize = OPUS_RATE as usize / 50;

fn encoding(error: impl std::fmt::Display) -> Error {
    Error::Encode {
        format: "Ogg Opus",
        reason: error.to_string(),
    }
}

/// Mono `samples` at `rate` Hz as an Ogg Opus voice note.
pub fn encode_ogg_opus(samples: &[f32], rate: u32) -> Result<Vec<u8>> {
    let samples = resample(samples, rate, OPUS_RATE)?;
    let mut encoder = OpusEncoder::new(OPUS_RATE as i32, 1, Application::Voip).map_err(encoding)?;
    encoder.bitrate_bps = VOICE_NOTE_BITRATE;
    let head = OpusHead::for_encoder(&encoder, rate);
    // The encoder runs `pre_skip` samples behind its input: that much silence more flushes
    // the end of the speech out of it, and the last packet's duration says where the speech
    // stopped, so a player trims the padding off again (RFC 7845, 4.4).
    let final_granule = u64::from(head.pre_skip) + samples.len() as u64;
    let frames = (samples.len() + usize::from(head.pre_skip)).div_ceil(FRAME);
    let mut writer = OggOpusWriter::new(Vec::new(), head).map_err(encoding)?;
    let mut packet = vec![0u8; MAX_PACKET_BYTES];
    let mut block = vec![0f32; FRAME];
    for i in 0..frames {
        let start = (i * FRAME).min(samples.len());
        let end = (start + FRAME).min(samples.len());
        block[..end - start].copy_from_slice(&samples[start..end]);
        block[end - start..].fill(0.0);
        let length = encoder
            .encode(&block, FRAME, &mut packet)
            .map_err(encoding)?;
        if i + 1 == frames {
            let duration = final_granule.saturating_sub(writer.granule() as u64);
            writer
                .write_packet_with_duration(&packet[..length], duration as u32)
                .map_err(encoding)?;
        } else {
            writer.write_packet(&packet[..length]).map_err(encoding)?;
        }
    }
    writer.finish().map_err(encoding)
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

    #[test]
    fn a_voice_note_decodes_to_the_same_length_and_loudness() {
        // Two seconds of a 440 Hz tone at 22,050 Hz, as a voice comes out of its model.
        let tone: Vec<f32> = (0..44_100)
            .map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 22_050.0).sin())
            .collect();
        let note = encode_ogg_opus(&tone, 22_050).unwrap();
        assert!(note.starts_with(OGG_MAGIC));
        // About 24 kbit/s: 2 s is 6 kB of packets, a little more with the pages.
        assert!((4_000..9_000).contains(&note.len()), "{} bytes", note.len());
        let decoded = decode_ogg_opus(&note).unwrap();
        assert!(
            (decoded.len() as i64 - 32_000).abs() <= 2,
            "{} samples at 16 kHz",
            decoded.len()
        );
        let middle = &decoded[8_000..24_000];
        let rms = (middle.iter().map(|s| s * s).sum::<f32>() / middle.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.05, "rms {rms}");
    }
}
