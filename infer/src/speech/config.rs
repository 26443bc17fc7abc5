//! A Piper voice's config (the `.onnx.json` beside the model): what piper-tts reads from it to
//! turn text into the model's inputs and its samples into audio. Only espeak-ng voices with one
//! speaker are taken; anything else is refused by name rather than spoken wrongly.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// What the engine uses of a voice's config.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// The rate the model's samples come out at.
    pub sample_rate: u32,
    /// The espeak-ng voice that phonemizes for it (`en-us`).
    pub espeak_voice: String,
    /// The scales the voice was tuned with: the model's `scales` input.
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    /// Each phoneme (a Unicode code point, or a few) to its ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct Raw {
    audio: RawAudio,
    espeak: RawEspeak,
    #[serde(default)]
    inference: RawInference,
    phoneme_type: Option<String>,
    #[serde(default = "one")]
    num_speakers: u32,
    #[serde(default)]
    vowel_clusters: Vec<Vec<String>>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

/// piper-tts's defaults for a config without an `inference` section.
#[derive(Deserialize)]
#[serde(default)]
struct RawInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for RawInference {
    fn default() -> Self {
        RawInference {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// The pad, start and end symbols piper-tts puts around and between phonemes.
pub const PAD: &str = "_";
pub const BOS: &str = "^";
pub const EOS: &str = "$";

impl VoiceConfig {
    /// Reads and checks the voice config at `path`.
    pub fn read(path: &Path) -> Result<VoiceConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::MissingModelFile {
                    path: path.to_path_buf(),
                }
            } else {
                Error::io("reading", path)(source)
            }
        })?;
        Self::parse(&text).map_err(|reason| Error::BadConfig {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// A voice config from its JSON text, or why it cannot be used.
    pub fn parse(text: &str) -> Result<VoiceConfig, String> {
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| format!("not a Piper voice config ({e})"))?;
        match raw.phoneme_type.as_deref() {
            None | Some("espeak") => {}
            Some(other) => {
                return Err(format!(
                    "phoneme_type {other:?}: this engine phonemizes with espeak-ng only"
                ));
            }
        }
        if raw.num_speakers != 1 {
            return Err(format!(
                "{} speakers: this engine speaks with single-speaker voices only",
                raw.num_speakers
            ));
        }
        if !raw.vowel_clusters.is_empty() {
            return Err("vowel_clusters: this engine does not merge vowel clusters".into());
        }
        for symbol in [PAD, BOS, EOS] {
            if raw.phoneme_id_map.get(symbol).is_none_or(Vec::is_empty) {
                return Err(format!("phoneme_id_map has no id for {symbol:?}"));
            }
        }
        if raw.audio.sample_rate == 0 {
            return Err("audio.sample_rate is 0".into());
        }
        Ok(VoiceConfig {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.voice,
            noise_scale: raw.inference.noise_scale,
            length_scale: raw.inference.length_scale,
            noise_w: raw.inference.noise_w,
            phoneme_id_map: raw.phoneme_id_map,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], "a": [14]}}"#;

    #[test]
    fn a_config_without_inference_gets_piper_tts_defaults() {
        let config = VoiceConfig::parse(MINIMAL).unwrap();
        assert_eq!(config.sample_rate, 22_050);
        assert_eq!(config.espeak_voice, "en-us");
        assert_eq!(
            (config.noise_scale, config.length_scale, config.noise_w),
            (0.667, 1.0, 0.8)
        );
    }

    #[test]
    fn what_the_engine_cannot_speak_with_is_refused_by_name() {
        let with =
            |key: &str, value: &str| MINIMAL.replacen('{', &format!("{{\"{key}\": {value},"), 1);
        assert!(
            VoiceConfig::parse(&with("phoneme_type", "\"pinyin\""))
                .unwrap_err()
                .contains("espeak-ng only")
        );
        assert!(
            VoiceConfig::parse(&with("num_speakers", "4"))
                .unwrap_err()
                .starts_with("4 speakers")
        );
        assert!(
            VoiceConfig::parse(&MINIMAL.replace(r#""^": [1], "#, ""))
                .unwrap_err()
                .contains("\"^\"")
        );
        assert!(
            VoiceConfig::parse("[]")
                .unwrap_err()
                .starts_with("not a Piper voice config")
        );
    }
}
