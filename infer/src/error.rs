//! The one error type of the inference engine. Each variant names the step that failed and the
//! thing it failed on (a lock entry, a file, a URL), so a log line is enough to act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pin, a download or the cache (carapace-models says which).
    #[error(transparent)]
    Models(#[from] carapace_models::Error),
    #[error("the engine knows no model named {model:?}; GET /v1/models lists them")]
    UnknownModel { model: String },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {} is missing", .path.display())]
    MissingModelFile { path: PathBuf },
    #[error("model config {}: {reason}", .path.display())]
    BadConfig { path: PathBuf, reason: String },
    #[error("model weights {}: {reason}", .path.display())]
    BadWeights { path: PathBuf, reason: String },
    #[error("tokenizer {}: {reason}", .path.display())]
    BadTokenizer { path: PathBuf, reason: String },
    #[error("tokenizing the input: {reason}")]
    Tokenize { reason: String },
    #[error("{action}: {source}")]
    Tensor {
        action: &'static str,
        #[source]
        source: candle_core::Error,
    },
    #[error("{action} ONNX Runtime from {}: {reason}", .library.display())]
    OnnxRuntime {
        action: &'static str,
        library: PathBuf,
        reason: String,
    },
    #[error("ONNX model {}: {reason}", .path.display())]
    OnnxModel { path: PathBuf, reason: String },
    #[error("running {model}: {reason}")]
    Inference { model: &'static str, reason: String },
    #[error("phonemizing with the espeak-ng program: {reason}")]
    Phonemize { reason: String },
    #[error("encoding {format}: {reason}")]
    Encode {
        format: &'static str,
        reason: String,
    },
    #[error("the local API listens on loopback only, not on {address}; use 127.0.0.1:PORT")]
    NotLoopback { address: std::net::SocketAddr },
    #[error("listening on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("model pack {}: {reason}", .dir.display())]
    PackRefused { dir: PathBuf, reason: String },
    #[error("this engine keeps no packs the owner adds (start it with serve --pack-store DIR)")]
    NoPackStore,
    #[error("the model pack was not added: {reason}")]
    PackUpload { reason: String },
    #[error("{model} is one of the image's models; only packs the owner added can be removed")]
    NotRemovable { model: String },
    #[error("the update keys: {reason}")]
    UpdateKeys { reason: String },
    #[error("model {model} cannot be loaded: {reason}")]
    ModelUnavailable { model: String, reason: String },
    #[error("model {model} does not do {capability}")]
    WrongCapability { model: String, capability: String },
    #[error("{reason}")]
    BadRequest { reason: String },
    #[error("the audio is not usable: {reason}")]
    BadAudio { reason: String },
    #[error("the image is not usable: {reason}")]
    BadImage { reason: String },
    #[error(
        "the image is {width} x {height} pixels, over the {max_pixels} this engine reads; send \
         a smaller image"
    )]
    ImageTooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error(
        "asked for {asked} CPU threads, but candle sizes its pools from the environment and \
         would use {candle_would_use}; start the process with RAYON_NUM_THREADS={asked} \
         (and CANDLE_NUM_THREADS unset or equal), e.g. through carapace_infer::pin_cpu_threads"
    )]
    ThreadsNotPinned {
        asked: usize,
        candle_would_use: usize,
    },
}

impl Error {
    /// An I/O error on `path` during `action` ("reading", "creating", ...).
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// A candle error during `action`.
    pub(crate) fn tensor(action: &'static str) -> impl FnOnce(candle_core::Error) -> Error {
        move |source| Error::Tensor { action, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
