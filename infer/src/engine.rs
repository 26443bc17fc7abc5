//! The engine behind the local API: which models this box has, loading each on first use and
//! dropping it again after it sat idle, and one computation at a time on the shared thread
//! pools (two at once would only split the same cores and make both late).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::embedder::Embedder;
use crate::error::{Error, Result};
use crate::ocr::{TextLine, TextReader};
use crate::onnx::{OnnxRuntime, OnnxRuntimeKind};
use crate::speech::{Speech, Voice};
use crate::vad::VoiceActivity;
use crate::vision::{Describer, Description};
use crate::whisper::{TranscribeOptions, Transcriber, Transcript};
use carapace_models::{ModelLock, onnx_runtime_pin, openvino_runtime_pin};
use carapace_update::Trust;

/// What a model does, which decides the endpoint that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Embeddings,
    VoiceActivity,
    Transcription,
    Speech,
    /// Text in images (OCR).
    Ocr,
    /// A vision-language model that answers about a picture; no pin ships one, a model pack
    /// brings it (vision/mod.rs).
    ImageDescription,
}

impl Capability {
    /// Every capability, in the API's order (a pack may declare any of them).
    pub const ALL: [Capability; 6] = [
        Capability::Embeddings,
        Capability::VoiceActivity,
        Capability::Transcription,
        Capability::Speech,
        Capability::Ocr,
        Capability::ImageDescription,
    ];

    /// Its name in the API and in a pack's manifest (serde's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Embeddings => "embeddings",
            Capability::VoiceActivity => "voice_activity",
            Capability::Transcription => "transcription",
            Capability::Speech => "speech",
            Capability::Ocr => "ocr",
            Capability::ImageDescription => "image_description",
        }
    }
}

/// The models the engine knows, by lock name: offered on every box (one the image lacks is
/// listed, and asking for it says what is missing).
const CATALOG: [(&str, Capability); 5] = [
    ("all-minilm-l6-v2", Capability::Embeddings),
    ("silero-vad", Capability::VoiceActivity),
    ("whisper-tiny-en", Capability::Transcription),
    ("piper-en-us-joe-medium", Capability::Speech),
    ("pp-ocrv4", Capability::Ocr),
];

/// Pinned models a recipe may add (`[[model]]`), offered where the image carries them:
/// Whisper base hears 99 languages, in twice tiny.en's size and three times its time.
const OPTIONAL_CATALOG: [(&str, Capability); 1] = [("whisper-base", Capability::Transcription)];

/// Where the engine finds its files and how it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds `<name>-<version>/` folders as models.lock unpacks them (the cache's `models/`).
    pub models_dir: PathBuf,
    pub threads: NonZeroUsize,
    /// A loaded model unused this long is dropped, giving its memory back.
    pub idle_unload: Duration,
    /// The ONNX Runtime build the ONNX models run on.
    pub onnx_runtime: OnnxRuntimeKind,
}

/// Where a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Pinned in models.lock and carried in the image.
    Image,
    /// A signed pack the image carries (recipe `[[model_pack]]`).
    ImagePack,
    /// A signed pack the owner added to the box (`POST /v1/packs`), which may be removed.
    AddedPack,
}

/// One model as the API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    pub id: String,
    pub capability: Capability,
    pub source: ModelSource,
    /// A pack's version (pinned models go by the image's).
    pub version: Option<String>,
    pub loaded: bool,
    /// Where it runs, and why there.
    pub device: String,
    pub device_reason: String,
    /// Why the last load failed, until a load succeeds.
    pub last_error: Option<String>,
}

enum Loaded {
    Embedder(Box<Embedder>),
    VoiceActivity(VoiceActivity),
    Transcriber(Box<Transcriber>),
    Voice(Box<Voice>),
    TextReader(Box<TextReader>),
    Describer(Box<Describer>),
}

pub(crate) struct Slot {
    pub(crate) dir: PathBuf,
    capability: Capability,
    pub(crate) source: ModelSource,
    /// For a model pack: the trust its files are checked with before every load, so that a
    /// file changed after the engine started is caught too.
    pack_trust: Option<Arc<Trust>>,
    loaded: Option<Loaded>,
    last_used: Instant,
}

pub(crate) struct Models {
    pub(crate) slots: BTreeMap<String, Slot>,
    /// ONNX Runtime, loaded with the first ONNX model and kept: a process may load it once.
    onnx: Option<Arc<OnnxRuntime>>,
    onnx_library: PathBuf,
}

pub struct Engine {
    config: EngineConfig,
    /// Held while a model loads or computes.
    models: Mutex<Models>,
    /// What `status` says, kept apart so that it answers while `models` is held.
    reported: Mutex<BTreeMap<String, ModelStatus>>,
    /// Where packs the owner adds are kept (on /data), if this engine keeps any.
    pub(crate) pack_store: Option<crate::packs::PackStore>,
}

/// Why the CPU runs a model on candle: its accelerators' paths (CUDA, Metal) are cargo
/// features this build does not have.
const CANDLE_CPU: &str = "candle runs on the CPU in this build (no CUDA)";
/// What an ONNX model's status says until its first load places it.
const ONNX_NOT_PLACED: &str = "placed when it first loads (ONNX Runtime)";

/// An unloaded model's status.
fn fresh_status(
    id: &str,
    capability: Capability,
    source: ModelSource,
    version: Option<String>,
) -> ModelStatus {
    let onnx = matches!(
        capability,
        Capability::VoiceActivity | Capability::Speech | Capability::Ocr
    );
    ModelStatus {
        id: id.to_string(),
        capability,
        source,
        version,
        loaded: false,
        device: "cpu".into(),
        device_reason: if onnx { ONNX_NOT_PLACED } else { CANDLE_CPU }.into(),
        last_error: None,
    }
}

impl Engine {
    /// An engine over the models in `config.models_dir`; nothing is loaded yet.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let lock = ModelLock::pinned()?;
        let mut slots = BTreeMap::new();
        let mut reported = BTreeMap::new();
        let carried = |(name, _): &(&str, Capability)| {
            lock.model(name)
                .is_ok_and(|pin| config.models_dir.join(pin.unpacked_dir_name()).is_dir())
        };
        let optional = OPTIONAL_CATALOG.into_iter().filter(carried);
        for (name, capability) in CATALOG.into_iter().chain(optional) {
            reported.insert(
                name.to_string(),
                fresh_status(name, capability, ModelSource::Image, None),
            );
            let pin = lock.model(name)?;
            slots.insert(
                name.to_string(),
                Slot {
                    dir: config.models_dir.join(pin.unpacked_dir_name()),
                    capability,
                    source: ModelSource::Image,
                    pack_trust: None,
                    loaded: None,
                    last_used: Instant::now(),
                },
            );
        }
        let runtime_pin = match config.onnx_runtime {
            OnnxRuntimeKind::Default => onnx_runtime_pin(),
            OnnxRuntimeKind::OpenVino => {
                openvino_runtime_pin().ok_or_else(|| Error::OnnxRuntime {
                    action: "finding",
                    library: config.models_dir.clone(),
                    reason: format!(
                        "ONNX Runtime's OpenVINO build is made for x86-64, not {}",
                        std::env::consts::ARCH
                    ),
                })?
            }
        };
        let runtime = lock.model(&runtime_pin)?;
        let onnx_library = config
            .models_dir
            .join(runtime.unpacked_dir_name())
            .join(&runtime.files[0]);
        Ok(Engine {
            config,
            models: Mutex::new(Models {
                slots,
                onnx: None,
                onnx_library,
            }),
            reported: Mutex::new(reported),
            pack_store: None,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Models> {
        // A panic while computing poisons the lock; the models are still whole (a failed
        // computation changes nothing in them), so the engine goes on.
        self.models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every model this engine knows, loaded or not. Answers at once, even while a model
    /// loads or computes.
    pub fn status(&self) -> Vec<ModelStatus> {
        self.reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The capability of model `id`, or UnknownModel.
    pub fn capability(&self, id: &str) -> Result<Capability> {
        self.reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .map(|status| status.capability)
            .ok_or_else(|| Error::UnknownModel { model: id.into() })
    }

    /// Offers model `id` from the pack `pack` in `dir`, whose files are checked with `trust`
    /// before each load. An id the engine has already is refused, unless both are packs the
    /// owner added (a new version replaces the old one, which is unloaded); returns the folder
    /// of the pack replaced.
    pub(crate) fn add_pack_model(
        &self,
        pack: &carapace_models::PackManifest,
        capability: Capability,
        dir: PathBuf,
        source: ModelSource,
        trust: Arc<Trust>,
    ) -> Result<Option<PathBuf>> {
        let id = pack.name.as_str();
        let mut models = self.lock();
        let replaced = match models.slots.get(id) {
            None => None,
            Some(slot) if slot.source == ModelSource::AddedPack && source == slot.source => {
                Some(slot.dir.clone())
            }
            Some(_) => {
                return Err(Error::PackRefused {
                    dir,
                    reason: format!("the engine has a model named {id} already"),
                });
            }
        };
        models.slots.insert(
            id.to_string(),
            Slot {
                dir,
                capability,
                source,
                pack_trust: Some(trust),
                loaded: None,
                last_used: Instant::now(),
            },
        );
        drop(models);
        self.reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                id.to_string(),
                fresh_status(id, capability, source, Some(pack.version.clone())),
            );
        Ok(replaced)
    }

    /// Stops offering model `id` (unloading it) and returns its slot.
    pub(crate) fn remove_model(&self, id: &str) -> Option<Slot> {
        let slot = self.lock().slots.remove(id)?;
        self.reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id);
        Some(slot)
    }

    /// Embeds `inputs` with model `id`: the vectors and the word pieces read. Blocks while
    /// the model loads or another computation runs.
    pub fn embed(&self, id: &str, inputs: &[&str]) -> Result<(Vec<Vec<f32>>, usize)> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::Embedder(embedder) => embedder.embed_counted(inputs),
            _ => Err(wrong(id, "embeddings")),
        })
    }

    /// The speech segments in 16 kHz `samples`, by model `id`.
    pub fn speech_segments(
        &self,
        id: &str,
        samples: &[f32],
    ) -> Result<Vec<crate::vad::SpeechSegment>> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::VoiceActivity(vad) => vad.speech_segments(samples),
            _ => Err(wrong(id, "voice activity")),
        })
    }

    /// The text spoken in 16 kHz `samples`, by model `id`.
    pub fn transcribe(
        &self,
        id: &str,
        samples: &[f32],
        options: &TranscribeOptions,
    ) -> Result<Transcript> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::Transcriber(whisper) => whisper.transcribe(samples, options),
            _ => Err(wrong(id, "transcription")),
        })
    }

    /// `text` spoken by voice model `id` at `speed` (1 is the voice's own pace).
    pub fn speak(&self, id: &str, text: &str, speed: f32) -> Result<Speech> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::Voice(voice) => voice.speak(text, speed),
            _ => Err(wrong(id, "speech")),
        })
    }

    /// The lines of text in `image`, in reading order, by model `id`.
    pub fn read_text(&self, id: &str, image: &image::RgbImage) -> Result<Vec<TextLine>> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::TextReader(reader) => reader.read(image),
            _ => Err(wrong(id, "OCR")),
        })
    }

    /// Answers `question` (None: describe it) about the PNG or JPEG `image`, by model `id`,
    /// in at most `max_tokens` tokens.
    pub fn describe_image(
        &self,
        id: &str,
        image: &[u8],
        question: Option<&str>,
        max_tokens: usize,
    ) -> Result<Description> {
        self.with_loaded(id, |loaded| match loaded {
            Loaded::Describer(describer) => describer.describe(image, question, max_tokens),
            _ => Err(wrong(id, "image description")),
        })
    }

    /// Drops the models unused for `idle_unload`; returns their names.
    pub fn unload_idle(&self) -> Vec<String> {
        let idle = self.config.idle_unload;
        // A model computing now is not idle: try again next round rather than wait.
        let mut models = match self.models.try_lock() {
            Ok(models) => models,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
        };
        let mut dropped = Vec::new();
        for (id, slot) in &mut models.slots {
            if slot.loaded.is_some() && slot.last_used.elapsed() >= idle {
                slot.loaded = None;
                dropped.push(id.clone());
            }
        }
        drop(models);
        if !dropped.is_empty() {
            crate::malloc::return_freed_memory();
        }
        for id in &dropped {
            self.report(id, |status| status.loaded = false);
        }
        dropped
    }

    fn with_loaded<T>(&self, id: &str, run: impl FnOnce(&mut Loaded) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        let Models {
            slots,
            onnx,
            onnx_library,
        } = &mut *guard;
        let slot = slots
            .get_mut(id)
            .ok_or_else(|| Error::UnknownModel { model: id.into() })?;
        let loaded = match &mut slot.loaded {
            Some(loaded) => loaded,
            None => {
                let result = check_pack(slot).and_then(|()| {
                    load(
                        slot.capability,
                        &slot.dir,
                        onnx,
                        onnx_library,
                        self.config.threads,
                    )
                });
                let placements = match (&result, onnx.as_ref()) {
                    (Ok(_), Some(runtime)) => runtime.placements_under(&slot.dir),
                    _ => Vec::new(),
                };
                self.report(id, |status| {
                    status.loaded = result.is_ok();
                    status.last_error = result.as_ref().err().map(ToString::to_string);
                    if !placements.is_empty() {
                        let devices: Vec<&str> =
                            placements.iter().map(|p| p.device.as_str()).collect();
                        let reasons: Vec<&str> =
                            placements.iter().map(|p| p.reason.as_str()).collect();
                        status.device = devices.join("+");
                        status.device_reason = reasons.join("; ");
                    }
                });
                match result {
                    Ok(loaded) => slot.loaded.insert(loaded),
                    Err(error) => {
                        return Err(Error::ModelUnavailable {
                            model: id.into(),
                            reason: error.to_string(),
                        });
                    }
                }
            }
        };
        let result = run(loaded);
        // Idle from the moment the work ends: a load and a run longer than idle_unload used
        // to leave the model idle, and unloaded, the moment it answered.
        slot.last_used = Instant::now();
        result
    }

    /// Changes what `status` says of model `id`.
    fn report(&self, id: &str, change: impl FnOnce(&mut ModelStatus)) {
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(status) = reported.get_mut(id) {
            change(status);
        }
    }
}

/// A pack's files, hashed against its signed manifest just before they are loaded.
fn check_pack(slot: &Slot) -> Result<()> {
    let Some(trust) = &slot.pack_trust else {
        return Ok(());
    };
    carapace_models::verify_pack(&slot.dir, trust, crate::packs::now())?;
    Ok(())
}

fn wrong(id: &str, capability: &str) -> Error {
    Error::WrongCapability {
        model: id.into(),
        capability: capability.into(),
    }
}

fn load(
    capability: Capability,
    dir: &Path,
    onnx: &mut Option<Arc<OnnxRuntime>>,
    onnx_library: &Path,
    threads: NonZeroUsize,
) -> Result<Loaded> {
    match capability {
        Capability::Embeddings => {
            Embedder::load(dir, threads).map(|e| Loaded::Embedder(Box::new(e)))
        }
        Capability::Transcription => {
            Transcriber::load(dir, threads).map(|t| Loaded::Transcriber(Box::new(t)))
        }
        Capability::ImageDescription => {
            Describer::load(dir, threads).map(|d| Loaded::Describer(Box::new(d)))
        }
        // ONNX Runtime is loaded with the first of its models and kept for the others.
        Capability::VoiceActivity | Capability::Speech | Capability::Ocr => {
            let runtime = match onnx {
                Some(runtime) => runtime,
                None => onnx.insert(OnnxRuntime::shared(onnx_library, threads)?),
            };
            match capability {
                Capability::VoiceActivity => {
                    VoiceActivity::load(runtime, dir).map(Loaded::VoiceActivity)
                }
                Capability::Speech => {
                    Voice::load(runtime, dir).map(|voice| Loaded::Voice(Box::new(voice)))
                }
                _ => TextReader::load(runtime, dir).map(|r| Loaded::TextReader(Box::new(r))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capabilitys_name_is_its_name_in_the_api() {
        for capability in Capability::ALL {
            assert_eq!(
                serde_json::to_value(capability).unwrap(),
                serde_json::Value::from(capability.name())
            );
        }
    }
}
