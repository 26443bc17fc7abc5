//! Voice activity with Silero VAD (the ONNX model the silero-vad package ships), run through
//! ONNX Runtime, and the segmenting rules of silero-vad's `get_speech_timestamps` with its
//! defaults, so the engine cuts speech where the Python package does.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use crate::audio::SPEECH_SAMPLE_RATE;
use crate::error::{Error, Result};
use crate::onnx::OnnxRuntime;

/// Samples per model call at 16 kHz, and the samples of the previous window the model sees
/// again in front of each call (silero-vad 5 and later).
const WINDOW: usize = 512;
const CONTEXT: usize = 64;
/// The model's recurrent state: 2 x batch x 128.
const STATE: usize = 2 * 128;

/// One stretch of speech, in samples at 16 kHz (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SpeechSegment {
    pub start: usize,
    pub end: usize,
}

impl SpeechSegment {
    pub fn start_seconds(&self) -> f64 {
        self.start as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }
    pub fn end_seconds(&self) -> f64 {
        self.end as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }
}

/// How probabilities become segments; the defaults are silero-vad's.
#[derive(Debug, Clone, Copy)]
pub struct SegmentRules {
    /// A window at or above this probability is speech.
    pub threshold: f32,
    /// Speech ends only after the probability stays below this...
    pub neg_threshold: f32,
    /// ...for this many samples.
    pub min_silence: usize,
    /// Shorter speech is dropped.
    pub min_speech: usize,
    /// Each segment is widened by this many samples on both sides.
    pub pad: usize,
}

impl Default for SegmentRules {
    fn default() -> Self {
        let ms = |ms: usize| SPEECH_SAMPLE_RATE as usize * ms / 1000;
        SegmentRules {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_silence: ms(100),
            min_speech: ms(250),
            pad: ms(30),
        }
    }
}

/// A loaded Silero VAD model.
pub struct VoiceActivity {
    session: Session,
}

impl VoiceActivity {
    /// Loads silero_vad.onnx from `dir`.
    pub fn load(runtime: &OnnxRuntime, dir: &Path) -> Result<VoiceActivity> {
        Ok(VoiceActivity {
            session: runtime.session(&dir.join("silero_vad.onnx"))?,
        })
    }

    /// The speech probability of each 512-sample window of 16 kHz `samples` (the last window
    /// padded with silence).
    pub fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        let failed = |e: ort::Error| Error::Inference {
            model: "silero-vad",
            reason: e.to_string(),
        };
        let mut state = vec![0f32; STATE];
        let mut input = vec![0f32; CONTEXT + WINDOW];
        let mut probabilities = Vec::with_capacity(samples.len().div_ceil(WINDOW));
        for window in samples.chunks(WINDOW) {
            // The context is the end of the previous window's input.
            input.copy_within(WINDOW.., 0);
            input[CONTEXT..CONTEXT + window.len()].copy_from_slice(window);
            input[CONTEXT + window.len()..].fill(0.0);
            let outputs = self
                .session
                .run(ort::inputs![
                    "input" => Tensor::from_array(([1usize, CONTEXT + WINDOW], input.clone())).map_err(failed)?,
                    "state" => Tensor::from_array(([2usize, 1, 128], state.clone())).map_err(failed)?,
                    "sr" => Tensor::from_array(((), vec![i64::from(SPEECH_SAMPLE_RATE)])).map_err(failed)?,
                ])
                .map_err(failed)?;
            let (_, probability) = outputs["output"]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            let (_, next_state) = outputs["stateN"]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            probabilities.push(probability.first().copied().unwrap_or(0.0));
            state.copy_from_slice(next_state);
        }
        Ok(probabilities)
    }

    /// The speech in 16 kHz `samples`, cut by silero-vad's default rules.
    pub fn speech_segments(&mut self, samples: &[f32]) -> Result<Vec<SpeechSegment>> {
        let probabilities = self.probabilities(samples)?;
        Ok(segments(
            &probabilities,
            samples.len(),
            &SegmentRules::default(),
        ))
    }
}

/// Segments from per-window probabilities over `length` samples: silero-vad's
/// `get_speech_timestamps_from_probs` without a longest-segment limit (its default).
pub fn segments(probabilities: &[f32], length: usize, rules: &SegmentRules) -> Vec<SpeechSegment> {
    let mut found: Vec<SpeechSegment> = Vec::new();
    let mut start: Option<usize> = None;
    let mut silence_from: Option<usize> = None;
    for (i, &probability) in probabilities.iter().enumerate() {
        let at = i * WINDOW;
        if probability >= rules.threshold {
            silence_from = None;
            if start.is_none() {
                start = Some(at);
            }
            continue;
        }
        let Some(speech_start) = start else { continue };
        if probability < rules.neg_threshold {
            let from = *silence_from.get_or_insert(at);
            if at - from >= rules.min_silence {
                if from - speech_start > rules.min_speech {
                    found.push(SpeechSegment {
                        start: speech_start,
                        end: from,
                    });
                }
                start = None;
                silence_from = None;
            }
        }
    }
    if let Some(speech_start) = start
        && length.saturating_sub(speech_start) > rules.min_speech
    {
        found.push(SpeechSegment {
            start: speech_start,
            end: length,
        });
    }
    pad(&mut found, length, rules.pad);
    found
}

/// Widens each segment by `pad` samples; two segments closer than two pads split the gap.
fn pad(found: &mut [SpeechSegment], length: usize, pad: usize) {
    if let Some(first) = found.first_mut() {
        first.start = first.start.saturating_sub(pad);
    }
    for i in 0..found.len() {
        if i + 1 == found.len() {
            found[i].end = (found[i].end + pad).min(length);
            break;
        }
        let gap = found[i + 1].start.saturating_sub(found[i].end);
        if gap < 2 * pad {
            found[i].end += gap / 2;
            found[i + 1].start = found[i + 1].start.saturating_sub(gap / 2);
        } else {
            found[i].end = (found[i].end + pad).min(length);
            found[i + 1].start = found[i + 1].start.saturating_sub(pad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pattern: &str) -> Vec<f32> {
        pattern
            .chars()
            .map(|c| match c {
                '#' => 0.9,
                '~' => 0.4, // between the thresholds: neither starts nor ends speech
                _ => 0.05,
            })
            .collect()
    }

    fn cut(pattern: &str) -> Vec<(usize, usize)> {
        let p = probs(pattern);
        segments(&p, p.len() * WINDOW, &SegmentRules::default())
            .iter()
            .map(|s| (s.start, s.end))
            .collect()
    }

    #[test]
    fn one_stretch_of_speech_becomes_one_padded_segment() {
        // 10 windows of speech from window 5: 5*512 - 480 .. 15*512 + 480.
        let pattern = format!("{}{}{}", ".".repeat(5), "#".repeat(10), ".".repeat(10));
        assert_eq!(cut(&pattern), [(5 * 512 - 480, 15 * 512 + 480)]);
    }

    #[test]
    fn a_pause_shorter_than_100_ms_does_not_split_speech() {
        // 3 windows (96 ms) below the threshold, then speech again.
        let pattern = format!("{}...{}{}", "#".repeat(10), "#".repeat(10), ".".repeat(10));
        assert_eq!(cut(&pattern), [(0, 23 * 512 + 480)]);
    }

    #[test]
    fn a_long_pause_splits_and_a_blip_shorter_than_250_ms_is_dropped() {
        let pattern = format!(
            "{}{}{}{}{}",
            "#".repeat(10),
            ".".repeat(20),
            "##",
            ".".repeat(20),
            "#".repeat(10)
        );
        let found = cut(&pattern);
        assert_eq!(found, [(0, 10 * 512 + 480), (52 * 512 - 480, 62 * 512)]);
    }

    #[test]
    fn probabilities_between_the_thresholds_keep_speech_going() {
        let pattern = format!("{}{}{}", "#".repeat(10), "~".repeat(20), ".".repeat(10));
        assert_eq!(cut(&pattern), [(0, 30 * 512 + 480)]);
    }

    #[test]
    fn speech_running_to_the_end_ends_at_the_audio_length() {
        let p = probs(&format!("{}{}", ".".repeat(5), "#".repeat(20)));
        let length = 25 * 512 - 100;
        let found = segments(&p, length, &SegmentRules::default());
        assert_eq!(
            found,
            [SpeechSegment {
                start: 5 * 512 - 480,
                end: length
            }]
        );
    }

    #[test]
    fn silence_has_no_segments() {
        assert!(cut(&".".repeat(100)).is_empty());
        assert!(cut("").is_empty());
    }
}
