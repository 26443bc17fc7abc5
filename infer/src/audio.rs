//! Audio in and out of the speech models: any PCM or float WAV (mono or more channels, any
//! rate) becomes 16 kHz mono f32 in [-1, 1], the form Silero VAD and Whisper take.

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::audioadapter_buffers::owned::InterleavedOwned;
use rubato::{Fft, FixedSync, Resampler};

use crate::error::{Error, Result};

/// The sample rate of the speech models' input.
pub const SPEECH_SAMPLE_RATE: u32 = 16_000;

/// The longest audio the engine takes in one request: 15 minutes, far above a voice note,
/// and a bound on the memory one request can ask for.
pub const MAX_AUDIO_SECONDS: u32 = 15 * 60;

fn bad(reason: impl Into<String>) -> Error {
    Error::BadAudio {
        reason: reason.into(),
    }
}

/// Decodes a voice note or recording to 16 kHz mono samples: Ogg Opus (what the IM apps send)
/// or WAV, told apart by their first bytes.
pub fn decode_audio(bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.starts_with(crate::ogg_opus::OGG_MAGIC) {
        crate::ogg_opus::decode_ogg_opus(bytes)
    } else {
        decode_wav(bytes)
    }
}

/// Decodes a WAV file's bytes to 16 kHz mono samples (channels averaged, then resampled).
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<f32>> {
    let streamed = with_streamed_length(bytes);
    let bytes = streamed.as_deref().unwrap_or(bytes);
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| {
        bad(format!(
            "not a WAV file the engine reads ({e}); send PCM or float WAV, or Ogg Opus"
        ))
    })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate < 1_000 || spec.sample_rate > 384_000 {
        return Err(bad(format!(
            "{} channels at {} Hz; send 1 or more channels at 1 kHz to 384 kHz",
            spec.channels, spec.sample_rate
        )));
    }
    let seconds = reader.duration() / spec.sample_rate;
    if seconds > MAX_AUDIO_SECONDS {
        return Err(bad(format!(
            "{seconds} s long; the most is {MAX_AUDIO_SECONDS} s, send it in parts"
        )));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1_i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
        }
    }
    .map_err(|e| bad(format!("the samples do not decode ({e})")))?;
    let channels = usize::from(spec.channels);
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    resample(&mono, spec.sample_rate, SPEECH_SAMPLE_RATE)
}

/// Lengths that programs writing a WAV to a pipe put in the header when they cannot know the
/// real one (espeak-ng --stdout writes 0x7ffff000, ffmpeg 0xffffffff).
const STREAMED_LENGTHS: [u32; 2] = [0x7fff_f000, 0xffff_ffff];

/// For a streamed WAV (its data chunk's length is one of [`STREAMED_LENGTHS`]): a copy whose
/// RIFF and data lengths say what is really there. None for any other bytes; a file cut off
/// with a plausible length stays refused.
fn with_streamed_length(bytes: &[u8]) -> Option<Vec<u8>> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return None;
    }
    let mut at = 12;
    while let Some(length) = u32_at(at + 4) {
        let body = at + 8;
        if bytes.get(at..at + 4) == Some(b"data") {
            if !STREAMED_LENGTHS.contains(&length) {
                return None;
            }
            let real = u32::try_from(bytes.len() - body).ok()?;
            let mut fixed = bytes.to_vec();
            fixed[at + 4..body].copy_from_slice(&real.to_le_bytes());
            let riff = u32::try_from(bytes.len() - 8).ok()?;
            fixed[4..8].copy_from_slice(&riff.to_le_bytes());
            return Some(fixed);
        }
        // Chunks are padded to an even length.
        at = body.checked_add(usize::try_from(length).ok()? + (length as usize & 1))?;
    }
    None
}

/// `samples` at `from` Hz, resampled to `to` Hz (band-limited, FFT-based).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let failed = |e: &dyn std::fmt::Display| bad(format!("resampling {from} Hz to {to} Hz: {e}"));
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| failed(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| failed(&e))?;
    let capacity = resampler.process_all_needed_output_len(samples.len());
    let mut output = InterleavedOwned::new(0.0, 1, capacity);
    let (_, produced) = resampler
        .process_all_into_buffer(&input, &mut output, samples.len(), None)
        .map_err(|e| failed(&e))?;
    let mut resampled = output.take_data();
    resampled.truncate(produced);
    Ok(resampled)
}

/// 16-bit PCM mono WAV bytes of `samples` (clipped to [-1, 1]) at `rate` Hz.
pub fn encode_wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    // Writing to a Vec cannot fail, and 16-bit mono is a format hound always accepts.
    if let Ok(mut writer) = hound::WavWriter::new(&mut bytes, spec) {
        for &sample in samples {
            let _ = writer.write_sample((sample.clamp(-1.0, 1.0) * 32767.0) as i16);
        }
        let _ = writer.finalize();
    }
    bytes.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_wav_at_22050_hz_comes_back_at_16_khz_with_its_length_and_loudness() {
        let wav = encode_wav(&tone(22_050, 2.0, 440.0), 22_050);
        let samples = decode_wav(&wav).unwrap();
        assert!(
            (samples.len() as i64 - 32_000).abs() <= 2,
            "{}",
            samples.len()
        );
        let middle = &samples[8_000..24_000];
        let rms = (middle.iter().map(|s| s * s).sum::<f32>() / middle.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "rms {rms}");
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for _ in 0..100 {
            writer.write_sample(16_384_i16).unwrap();
            writer.write_sample(0_i16).unwrap();
        }
        writer.finalize().unwrap();
        let samples = decode_wav(bytes.get_ref()).unwrap();
        assert_eq!(samples.len(), 100);
        assert!(samples.iter().all(|&s| (s - 0.25).abs() < 1e-4));
    }

    #[test]
    fn bytes_that_are_not_a_wav_file_are_refused_with_what_to_send() {
        match decode_wav(b"OggS\0\x02not a wav at all") {
            Err(Error::BadAudio { reason }) => {
                assert!(reason.starts_with("not a WAV file"), "{reason}");
                assert!(reason.contains("send PCM or float WAV"), "{reason}");
            }
            other => panic!("expected BadAudio, got {other:?}"),
        }
    }

    #[test]
    fn a_wav_streamed_to_a_pipe_is_read_to_its_end() {
        let mut wav = encode_wav(&tone(16_000, 1.0, 440.0), 16_000);
        // What espeak-ng --stdout writes: unknown lengths in the RIFF and data headers.
        wav[4..8].copy_from_slice(&0x7fff_f024_u32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7fff_f000_u32.to_le_bytes());
        assert_eq!(decode_wav(&wav).unwrap().len(), 16_000);
    }

    #[test]
    fn a_cut_off_wav_is_refused() {
        let wav = encode_wav(&tone(16_000, 1.0, 440.0), 16_000);
        assert!(matches!(
            decode_wav(&wav[..wav.len() / 2 + 1]),
            Err(Error::BadAudio { .. })
        ));
    }
}
