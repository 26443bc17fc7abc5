//! The local inference engine's contract between the builder, the box and agentd: where the
//! image keeps the models its recipe lists, and where the engine's API listens.
//!
//! ```text
//! /usr/share/carapace/models/            MODELS_DIR, in the verified root
//!     all-minilm-l6-v2-0.1.0/            <name>-<version>, as infer/models.lock unpacks it
//!         config.json tokenizer.json model.safetensors
//!     silero-vad-6.2.3/silero_vad.onnx   a model that runs on ONNX Runtime...
//!     onnxruntime-x86_64-1.31.1/         ...brings the board's ONNX Runtime library beside it
//!         libonnxruntime.so.1.31.1       (the engine loads it with dlopen)
//!     packs/                             MODEL_PACKS_DIR: signed packs (recipe [[model_pack]])
//!         whisper-base-en-1.0.0/         <name>-<version>
//!             pack.json pack.sig ...     checked with the image's update keys before use
//! /data/infer/packs/                     ADDED_MODEL_PACKS_DIR: the packs the owner added
//!     tiny-smolvlm-1.0.0/                (/add_model LINK), checked as those in the image
//! ```

/// The models the image carries (recipe `[[model]]`), read-only under dm-verity.
pub const MODELS_DIR: &str = "/usr/share/carapace/models";

/// Signed model packs the image carries, one folder each (carapace-models' pack.rs).
pub const MODEL_PACKS_DIR: &str = "/usr/share/carapace/models/packs";

/// The signed packs the owner adds to a running box (agentd's `/add_model`, the engine's
/// `POST /v1/packs`), in the engine's state directory on /data.
pub const ADDED_MODEL_PACKS_DIR: &str = "/data/infer/packs";

/// The engine's local API: loopback only (the firewall accepts loopback; nothing else on
/// the box or off it can reach it). agentd calls it for embeddings and transcriptions.
pub const API_ADDRESS: &str = "127.0.0.1:8089";

/// The embedding model agentd's memory uses.
pub const MEMORY_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// The voice-activity model that tells agentd whether a voice note holds speech at all.
pub const VOICE_ACTIVITY_MODEL: &str = "silero-vad";

/// The speech model every image carries (English).
pub const SPEECH_MODEL: &str = "whisper-tiny-en";

/// The speech models a transcription that names none goes to (agentd's voice notes): the first
/// the image carries. Whisper base hears 99 languages where a recipe adds it.
pub const SPEECH_MODELS: [&str; 2] = ["whisper-base", SPEECH_MODEL];

/// The language the box's voice speaks, as a transcript names it (OpenAI's `verbose_json`): a
/// voice note in another language is answered in text, not in a voice that cannot say it.
pub const VOICE_LANGUAGE: &str = "english";

/// The voice agentd's spoken replies are made with (text to speech, sent as voice notes).
pub const VOICE_MODEL: &str = "piper-en-us-joe-medium";

/// The OCR model the engine's /v1/images/ocr uses when a request names none.
pub const OCR_MODEL: &str = "pp-ocrv4";
