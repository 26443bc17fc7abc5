//! A Piper voice run through ONNX Runtime: each sentence's phoneme ids in, float samples out
//! at the voice's rate, a sentence at a time (the model's memory grows with the length of what
//! it reads, and piper-tts reads a sentence at a time too), each scaled to full volume as
//! piper-tts does, the sentences back to back. A pinned voice comes split at its decoder and
//! runs on all the engine's threads (split_voice.rs); a voice as piper exports it (one `.onnx`,
//! from a model pack) runs whole on the shared pool.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;

use super::config::VoiceConfig;
use super::phonemes::text_to_ids;
use super::split_voice::SplitVoice;
use crate::error::{Error, Result};
use crate::onnx::{OnnxRuntime, SessionOptions};

/// The slowest and fastest speech asked for (OpenAI's range for `speed`).
pub const MIN_SPEED: f32 = 0.25;
pub const MAX_SPEED: f32 = 4.0;

/// Speech made from text: mono samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct Speech {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Speech {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// A loaded Piper voice.
pub struct Voice {
    model: Model,
    config: VoiceConfig,
    /// Where the voice was loaded from, for errors.
    path: PathBuf,
}

enum Model {
    Split(SplitVoice),
    Whole(Session),
}

/// Why a voice does not run on OpenVINO's CPU plugin (`make bench`, the OpenVINO rows).
const ON_OPENVINOS_CPU: &str = "Piper's voice ran 1.5 times slower there, in 2.4 times the \
                                memory (make bench, 2026-12-03)";

/// The inputs every Piper voice's ONNX model takes (a multi-speaker one takes `sid` too).
const INPUTS: [&str; 3] = ["input", "input_lengths", "scales"];

impl Voice {
    /// Loads the voice in `dir`: its model, split or whole, and its `.onnx.json` config.
    pub fn load(runtime: &OnnxRuntime, dir: &Path) -> Result<Voice> {
        // Each sentence is a phoneme sequence of its own length: a memory plan per length
        // only added blocks (make bench: peak 210 MiB without, 247-266 with, the same time).
        let options = SessionOptions {
            memory_pattern: false,
            not_on_openvinos_cpu: Some(ON_OPENVINOS_CPU),
            ..SessionOptions::default()
        };
        if let Some(split) = SplitVoice::load(runtime, dir, options)? {
            return Ok(Voice {
                model: Model::Split(split),
                config: VoiceConfig::read(&config_file(dir)?)?,
                path: dir.to_path_buf(),
            });
        }
        let model = model_file(dir)?;
        let config = VoiceConfig::read(&PathBuf::from(format!("{}.json", model.display())))?;
        let session = runtime.session_with(&model, options)?;
        check_inputs(&session, &model)?;
        Ok(Voice {
            model: Model::Whole(session),
            config,
            path: model,
        })
    }

    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    /// `text` spoken at `speed` (1 is the voice's own pace, 2 twice as fast), each sentence
    /// synthesized on its own.
    pub fn speak(&mut self, text: &str, speed: f32) -> Result<Speech> {
        if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
            return Err(Error::BadRequest {
                reason: format!("speed {speed} is outside {MIN_SPEED} to {MAX_SPEED}"),
            });
        }
        let sentences = text_to_ids(&self.config, text)?;
        if sentences.is_empty() {
            return Err(Error::BadRequest {
                reason: "the text has no words to speak; send some".into(),
            });
        }
        let scales = [
            self.config.noise_scale,
            self.config.length_scale / speed,
            self.config.noise_w,
        ];
        let spoken = match &mut self.model {
            Model::Split(split) => split.speak(&sentences, scales)?,
            Model::Whole(session) => sentences
                .iter()
                .map(|ids| synthesize(session, ids, scales))
                .collect::<Result<_>>()?,
        };
        let mut samples = Vec::new();
        for mut sentence in spoken {
            if sentence.is_empty() {
                return Err(Error::Inference {
                    model: "piper",
                    reason: format!("{} gave no samples", self.path.display()),
                });
            }
            normalize(&mut sentence);
            samples.extend(sentence);
        }
        Ok(Speech {
            samples,
            sample_rate: self.config.sample_rate,
        })
    }
}

/// Refuses a model that does not take a single-speaker Piper voice's inputs.
pub(super) fn check_inputs(session: &Session, path: &Path) -> Result<()> {
    let mut inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    inputs.sort_unstable();
    let mut expected = INPUTS;
    expected.sort_unstable();
    if inputs != expected {
        return Err(Error::OnnxModel {
            path: path.to_path_buf(),
            reason: format!(
                "takes inputs {inputs:?}; a single-speaker Piper voice takes {INPUTS:?}"
            ),
        });
    }
    Ok(())
}

/// The whole model's samples for one sentence's phoneme `ids`, as they come out.
fn synthesize(session: &mut Session, ids: &[i64], scales: [f32; 3]) -> Result<Vec<f32>> {
    let failed = |e: ort::Error| Error::Inference {
        model: "piper",
        reason: e.to_string(),
    };
    let outputs = session
        .run(ort::inputs![
            "input" => Tensor::from_array(([1usize, ids.len()], ids.to_vec())).map_err(failed)?,
            "input_lengths" => Tensor::from_array(([1usize], vec![ids.len() as i64])).map_err(failed)?,
            "scales" => Tensor::from_array(([3usize], scales.to_vec())).map_err(failed)?,
        ])
        .map_err(failed)?;
    let (_, samples) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
    Ok(samples.to_vec())
}

/// The one `.onnx.json` config in `dir`.
fn config_file(dir: &Path) -> Result<PathBuf> {
    the_one_file(dir, ".onnx.json")
}

/// The one `.onnx` model in `dir` (a voice as piper exports it).
fn model_file(dir: &Path) -> Result<PathBuf> {
    the_one_file(dir, ".onnx")
}

/// The one file in `dir` whose name ends in `suffix`.
fn the_one_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingModelFile {
                path: dir.to_path_buf(),
            }
        } else {
            Error::io("listing", dir)(source)
        }
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::MissingModelFile {
            path: dir.join(format!("VOICE{suffix}")),
        }),
        n => Err(Error::BadConfig {
            path: dir.to_path_buf(),
            reason: format!("holds {n} {suffix} files; a voice's folder holds one"),
        }),
    }
}

/// Scales `samples` so that the loudest is at full scale (piper-tts's `normalize_audio`).
fn normalize(samples: &mut [f32]) {
    let peak = samples.iter().fold(0f32, |peak, s| peak.max(s.abs()));
    if peak < 1e-8 {
        samples.fill(0.0);
        return;
    }
    for sample in samples.iter_mut() {
        *sample = (*sample / peak).clamp(-1.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sentence_is_scaled_to_full_volume_and_silence_stays_silent() {
        let mut quiet = vec![0.1, -0.25, 0.05];
        normalize(&mut quiet);
        assert_eq!(quiet, [0.4, -1.0, 0.2]);
        let mut silence = vec![1e-9; 4];
        normalize(&mut silence);
        assert_eq!(silence, [0.0; 4]);
    }

    #[test]
    fn a_folder_without_a_model_is_named() {
        let dir = std::env::temp_dir().join(format!("piper-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = model_file(&dir);
        std::fs::remove_dir(&dir).unwrap();
        assert!(matches!(missing, Err(Error::MissingModelFile { path }) if path.starts_with(&dir)));
    }
}
