//! Speech recognition with Whisper on candle: 16 kHz audio is cut into 30-second windows of
//! log-mel spectrogram, each encoded once and decoded greedily, token by token through the
//! decoder's key/value cache, with the window before as the prompt (as openai-whisper's
//! `condition_on_previous_text`). Windows that are near-silent, or that Whisper itself judges
//! silent (its no-speech token likely and the text unlikely), add no text.

pub mod languages;
mod mel;
mod model;

use std::num::NonZeroUsize;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use crate::audio::SPEECH_SAMPLE_RATE;
use crate::error::{Error, Result};
use crate::threads::check_cpu_threads;
use crate::weights::StoredWeights;
pub use mel::{HOP, MelSpectrogram};
pub use model::{Decoder, DecoderCache, Encoder, Whisper, WhisperConfig};

/// Audio frames in one window: 30 s at 100 frames a second.
pub const WINDOW_FRAMES: usize = 3000;
const WINDOW_SECONDS: f64 = 30.0;

/// openai-whisper's thresholds for a silent window.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f64 = -1.0;
/// A window quieter than this (RMS, −60 dBFS) is not decoded: on near-silence Whisper says
/// "you" with confidence, which its own thresholds let through.
const QUIET_RMS: f32 = 0.001;

/// What a transcription may be told.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// ISO 639-1 code ("en"); an English-only model takes only "en". None: a multilingual
    /// model tells the language from the first window with speech; an English-only one hears
    /// English.
    pub language: Option<String>,
    /// Text that came before (names, spellings): the first window's prompt.
    pub prompt: Option<String>,
}

/// One window's text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TranscriptSegment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Transcript {
    pub text: String,
    /// The language heard in (the one asked for, or the one the model told): an ISO 639-1 code.
    /// "en" where a multilingual model heard no speech to tell it by.
    pub language: String,
    /// Seconds of audio.
    pub duration: f64,
    pub segments: Vec<TranscriptSegment>,
}

/// The special tokens the decoding uses, looked up in the model's tokenizer.
struct SpecialTokens {
    start_of_transcript: u32,
    end_of_text: u32,
    no_timestamps: u32,
    start_of_previous: u32,
    transcribe: u32,
    no_speech: Option<u32>,
}

/// A loaded Whisper with its tokenizer.
pub struct Transcriber {
    model: Whisper,
    tokenizer: Tokenizer,
    mel: MelSpectrogram,
    tokens: SpecialTokens,
    /// openai-whisper's rule: a vocabulary of 51865 or more is multilingual.
    multilingual: bool,
    /// A multilingual model's language tokens, with their codes ("de").
    languages: Vec<(u32, &'static str)>,
    /// 0 or −∞ per token: what may never be said (non-speech symbols, every special token
    /// but end-of-text, timestamps), and what may not start a text (a blank, end-of-text).
    suppressed: Vec<f32>,
    suppressed_at_start: Vec<f32>,
}

impl Transcriber {
    /// Loads config.json, tokenizer.json and model.safetensors (Hugging Face's Whisper) from
    /// `dir`, to run on `threads` CPU threads.
    pub fn load(dir: &Path, threads: NonZeroUsize) -> Result<Transcriber> {
        check_cpu_threads(threads)?;
        let config_path = crate::embedder::model_file(dir, "config.json")?;
        let text =
            std::fs::read_to_string(&config_path).map_err(Error::io("reading", &config_path))?;
        let config: WhisperConfig =
            serde_json::from_str(&text).map_err(|error| Error::BadConfig {
                path: config_path.clone(),
                reason: error.to_string(),
            })?;
        let tokenizer_path = crate::embedder::model_file(dir, "tokenizer.json")?;
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|error| Error::BadTokenizer {
                path: tokenizer_path.clone(),
                reason: error.to_string(),
            })?;
        let special = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| Error::BadTokenizer {
                    path: tokenizer_path.clone(),
                    reason: format!("it has no {name} token"),
                })
        };
        let tokens = SpecialTokens {
            start_of_transcript: special("<|startoftranscript|>")?,
            end_of_text: special("<|endoftext|>")?,
            no_timestamps: special("<|notimestamps|>")?,
            start_of_previous: special("<|startofprev|>")?,
            transcribe: special("<|transcribe|>")?,
            no_speech: special("<|nospeech|>")
                .or_else(|_| special("<|nocaptions|>"))
                .ok(),
        };
        let weights = crate::embedder::model_file(dir, "model.safetensors")?;
        let device = Device::Cpu;
        // Read one tensor at a time, each straight into the type it runs in (candle's
        // safetensors::load held the whole file, then every half-precision tensor beside its
        // float32 copy).
        let keep =
            |name: &str| Whisper::is_token_table(name) || crate::weights::is_dense_weight(name);
        let mut tensors = crate::weights::read_safetensors(
            &weights,
            crate::weights::float32_but_16_bit(keep),
            &device,
        )?;
        let stored = StoredWeights::take(&mut tensors, Whisper::is_token_table)?;
        let vocabulary = config.vocab_size;
        let multilingual = vocabulary >= 51_865;
        let mut suppressed = vec![0f32; vocabulary];
        let never = config.suppress_tokens.iter().flatten().copied();
        let specials = tokens.end_of_text + 1..vocabulary as u32;
        for token in never.chain(specials) {
            if let Some(score) = suppressed.get_mut(token as usize) {
                *score = f32::NEG_INFINITY;
            }
        }
        let mut suppressed_at_start = suppressed.clone();
        for &token in config.begin_suppress_tokens.iter().flatten() {
            if let Some(score) = suppressed_at_start.get_mut(token as usize) {
                *score = f32::NEG_INFINITY;
            }
        }
        // openai-whisper's rule: a multilingual vocabulary has 51865 tokens or more, and every
        // language it knows has a token.
        let languages: Vec<(u32, &str)> = if multilingual {
            languages::codes()
                .filter_map(|code| Some((tokenizer.token_to_id(&format!("<|{code}|>"))?, code)))
                .collect()
        } else {
            Vec::new()
        };
        let mel = MelSpectrogram::new(config.num_mel_bins, SPEECH_SAMPLE_RATE);
        let model = Whisper::load(
            config,
            VarBuilder::from_tensors(tensors, Whisper::DTYPE, &device),
            &stored,
        )
        .map_err(Error::tensor("building Whisper from model.safetensors"))?;
        Ok(Transcriber {
            model,
            tokenizer,
            mel,
            tokens,
            multilingual,
            languages,
            suppressed,
            suppressed_at_start,
        })
    }

    pub fn model(&self) -> &Whisper {
        &self.model
    }

    /// The prompt tokens that start a window: start of transcript, the language and task for
    /// a multilingual model, no timestamps.
    pub fn start_tokens(&self, language: &str) -> Result<Vec<u32>> {
        let mut start = vec![self.tokens.start_of_transcript];
        if self.multilingual {
            let token = self
                .tokenizer
                .token_to_id(&format!("<|{language}|>"))
                .ok_or_else(|| Error::BadRequest {
                    reason: format!("the model knows no language {language:?}; send an ISO 639-1 code such as \"en\""),
                })?;
            start.extend([token, self.tokens.transcribe]);
        } else if language != "en" {
            return Err(Error::BadRequest {
                reason: format!(
                    "this model hears English only, not {language:?}; leave `language` out or send \"en\""
                ),
            });
        }
        start.push(self.tokens.no_timestamps);
        Ok(start)
    }

    /// Transcribes 16 kHz mono `samples`.
    pub fn transcribe(&self, samples: &[f32], options: &TranscribeOptions) -> Result<Transcript> {
        // A language asked for is checked before any work; a multilingual model not told one
        // tells it from the first window with speech.
        let mut language = match &options.language {
            None if self.multilingual => None,
            asked => Some(asked.clone().unwrap_or_else(|| "en".into())),
        };
        let mut start = language
            .as_deref()
            .map(|language| self.start_tokens(language))
            .transpose()?;
        let mut previous = match &options.prompt {
            Some(prompt) if !prompt.trim().is_empty() => self
                .tokenizer
                .encode(format!(" {}", prompt.trim()), false)
                .map_err(|error| Error::Tokenize {
                    reason: error.to_string(),
                })?
                .get_ids()
                .to_vec(),
            _ => Vec::new(),
        };
        // Whisper pads the audio with one window of silence before the spectrogram, so that
        // the last window is whole; the loudness floor is taken over all of it.
        let mut padded = samples.to_vec();
        padded.resize(samples.len() + WINDOW_FRAMES * HOP, 0.0);
        let mel = self.mel.compute(&padded);
        let total_frames = padded.len() / HOP;
        let content_frames = samples.len() / HOP;
        let bins = self.model.config.num_mel_bins;
        let mut segments = Vec::new();
        for seek in (0..content_frames).step_by(WINDOW_FRAMES) {
            let mut window = Vec::with_capacity(bins * WINDOW_FRAMES);
            for bin in 0..bins {
                let row = &mel[bin * total_frames..(bin + 1) * total_frames];
                window.extend_from_slice(&row[seek..seek + WINDOW_FRAMES]);
            }
            let frames_here = WINDOW_FRAMES.min(content_frames - seek);
            let heard = &samples[seek * HOP..(seek + frames_here) * HOP];
            let rms = (heard.iter().map(|s| s * s).sum::<f32>() / heard.len().max(1) as f32).sqrt();
            if rms < QUIET_RMS {
                continue;
            }
            let cache = self.encode_window(window)?;
            let start = match &start {
                Some(start) => start.clone(),
                None => {
                    let told = self.tell_language(&cache)?;
                    language = Some(told.to_string());
                    start.insert(self.start_tokens(told)?).clone()
                }
            };
            let segment = self.decode_window(cache, &start, &previous)?;
            let start_seconds = seek as f64 / 100.0;
            let silent = segment.no_speech_prob > f64::from(NO_SPEECH_THRESHOLD)
                && segment.avg_logprob < LOGPROB_THRESHOLD;
            if silent || segment.tokens.is_empty() {
                continue;
            }
            previous = segment.tokens.clone();
            segments.push(TranscriptSegment {
                start: start_seconds,
                end: start_seconds + (frames_here as f64 / 100.0).min(WINDOW_SECONDS),
                ..segment
            });
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcript {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            language: language.unwrap_or_else(|| "en".into()),
            duration: samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE),
            segments,
        })
    }

    /// One window's spectrogram ([mel bins × WINDOW_FRAMES], row-major) encoded, as the
    /// decoder's fresh cache.
    fn encode_window(&self, window: Vec<f32>) -> Result<DecoderCache> {
        let tensor = |action| Error::tensor(action);
        let bins = self.model.config.num_mel_bins;
        let mel = Tensor::from_vec(window, (1, bins, WINDOW_FRAMES), &Device::Cpu)
            .map_err(tensor("building the spectrogram"))?;
        let audio = self
            .model
            .encoder
            .forward(&mel)
            .map_err(tensor("encoding the audio"))?;
        self.model
            .decoder
            .start(&audio)
            .map_err(tensor("starting the decoder"))
    }

    /// The language a multilingual model hears in a window: its likeliest language token after
    /// the start of transcript (openai-whisper's `detect_language`).
    fn tell_language(&self, fresh: &DecoderCache) -> Result<&'static str> {
        let tensor = |action| Error::tensor(action);
        let decoder = &self.model.decoder;
        let mut cache = fresh.clone();
        let hidden = decoder
            .forward(&[self.tokens.start_of_transcript], &mut cache)
            .and_then(|h| h.squeeze(0))
            .and_then(|h| h.to_vec1::<f32>())
            .map_err(tensor("telling the language"))?;
        let mut only_languages = vec![f32::NEG_INFINITY; self.suppressed.len()];
        for &(token, _) in &self.languages {
            if let Some(score) = only_languages.get_mut(token as usize) {
                *score = 0.0;
            }
        }
        let scores = decoder
            .masked_scores(&hidden, &only_languages)
            .map_err(tensor("telling the language"))?;
        let (token, _) = pick(&scores);
        self.languages
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, code)| *code)
            .ok_or_else(|| Error::Inference {
                model: "whisper",
                reason: "the model knows no language tokens to tell the language by".into(),
            })
    }

    /// Greedy decoding of one encoded window from its fresh decoder `cache`.
    fn decode_window(
        &self,
        mut cache: DecoderCache,
        start: &[u32],
        previous: &[u32],
    ) -> Result<TranscriptSegment> {
        let tensor = |action| Error::tensor(action);
        let decoder = &self.model.decoder;
        // The prompt: the previous text (at most half the window's positions, its end), then
        // the start tokens.
        let half = decoder.max_tokens() / 2;
        let mut prompt = Vec::new();
        if !previous.is_empty() {
            prompt.push(self.tokens.start_of_previous);
            prompt.extend(&previous[previous.len().saturating_sub(half - 1)..]);
        }
        let start_at = prompt.len();
        prompt.extend(start);
        let hidden = decoder
            .forward(&prompt, &mut cache)
            .map_err(tensor("decoding the prompt"))?;
        let rows = hidden.dim(0).map_err(tensor("decoding the prompt"))?;
        let row = |at: usize| -> Result<Vec<f32>> {
            hidden
                .narrow(0, at, 1)
                .and_then(|r| decoder.logits(&r))
                .and_then(|l| l.squeeze(0))
                .and_then(|l| l.to_vec1())
                .map_err(tensor("scoring the prompt"))
        };
        let no_speech_prob = match self.tokens.no_speech {
            Some(token) => f64::from(softmax_at(&row(start_at)?, token as usize)),
            None => 0.0,
        };
        let mut hidden = hidden
            .get(rows - 1)
            .and_then(|last| last.to_vec1::<f32>())
            .map_err(tensor("decoding the prompt"))?;
        let mut tokens = Vec::new();
        let mut logprob_sum = 0.0f64;
        let limit = half.min(decoder.max_tokens() - cache.len());
        loop {
            let mask = if tokens.is_empty() {
                &self.suppressed_at_start
            } else {
                &self.suppressed
            };
            let scores = decoder
                .masked_scores(&hidden, mask)
                .map_err(tensor("scoring a token"))?;
            let (token, logprob) = pick(&scores);
            logprob_sum += f64::from(logprob);
            if token == self.tokens.end_of_text || tokens.len() >= limit {
                break;
            }
            tokens.push(token);
            if cache.len() >= decoder.max_tokens() {
                break;
            }
            hidden = decoder
                .forward(&[token], &mut cache)
                .and_then(|h| h.squeeze(0))
                .and_then(|h| h.to_vec1::<f32>())
                .map_err(tensor("decoding a token"))?;
        }
        let text = self
            .tokenizer
            .decode(&tokens, true)
            .map_err(|error| Error::Tokenize {
                reason: error.to_string(),
            })?;
        Ok(TranscriptSegment {
            start: 0.0,
            end: 0.0,
            text: text.trim().to_string(),
            avg_logprob: logprob_sum / (tokens.len() + 1) as f64,
            tokens,
            no_speech_prob,
        })
    }
}

/// The likeliest token of the masked `scores`, and its log-probability under them.
fn pick(masked: &[f32]) -> (u32, f32) {
    // The first of equal scores, as torch's argmax.
    let mut best = 0;
    for (index, score) in masked.iter().enumerate() {
        if *score > masked[best] {
            best = index;
        }
    }
    let top = masked.get(best).copied().unwrap_or(0.0);
    let log_sum: f32 = masked.iter().map(|s| (s - top).exp()).sum::<f32>().ln() + top;
    (best as u32, top - log_sum)
}

/// softmax(scores)[at].
fn softmax_at(scores: &[f32], at: usize) -> f32 {
    let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = scores.iter().map(|s| (s - top).exp()).sum();
    scores.get(at).map_or(0.0, |s| (s - top).exp() / sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_is_the_first_largest_score_with_its_log_probability() {
        let masked = [1.0, f32::NEG_INFINITY, 2.0, 2.0];
        let (token, logprob) = pick(&masked);
        assert_eq!(token, 2);
        // softmax over [1, 2, 2] at 2: e² / (e + 2e²).
        let e = std::f32::consts::E;
        assert!((logprob - (e * e / (e + 2.0 * e * e)).ln()).abs() < 1e-6);
        assert!((softmax_at(&[0.0, 0.0], 1) - 0.5).abs() < 1e-7);
    }
}
