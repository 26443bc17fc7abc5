//! The local inference engine's contract between the builder, the box and agentd: where the
//! image keeps the models its recipe lists, and where the engine's API listens.
//!
//! ```text
//! /usr/share/carapace/models/            MODELS_DIR, in the verified root
//!     all-minilm-l6-v2-0.1.0/            <name>-<version>, as infer/models.lock unpacks it
//!         config.json tokenizer.json model.safetensors
//! ```

/// The models the image carries (recipe `[[model]]`), read-only under dm-verity.
pub const MODELS_DIR: &str = "/usr/share/carapace/models";

/// The engine's local API: loopback only (the firewall accepts loopback; nothing else on
/// the box or off it can reach it). agentd calls it for embeddings and transcriptions.
pub const API_ADDRESS: &str = "127.0.0.1:8089";

/// The embedding model agentd's memory uses.
pub const MEMORY_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

/// The speech model agentd's voice notes go to.
pub const SPEECH_MODEL: &str = "whisper-tiny-en";

/// The OCR model the engine's /v1/images/ocr uses when a request names none.
pub const OCR_MODEL: &str = "pp-ocrv4";
