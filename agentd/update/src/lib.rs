//! Carapace's update formats and their checks, shared by the `carapace` CLI (keygen, key
//! lists, bundle, publish) and the box's update service (trust, pointer, manifest, chunks).
//!
//! Trust: a root key (offline) signs a key list; the image carries the root public key and a
//! key list (`layout::IMAGE_ROOT_KEY`, `layout::IMAGE_KEY_LIST`); a newer list from the
//! repository's keys.json replaces it. The listed signing keys sign manifests and channel
//! pointers. docs/updates.md walks through the files with examples.
//!
//! The box, in order: offer keys.json to its `Trust`; `pointer::verify` the channel pointer;
//! `in_wave`; fetch the manifest it names and `CheckedPointer::verify_manifest`; index its
//! running slot (`ChunkIndex`) with the manifest's chunker, `patch::plan` what to download
//! (chunks of files, or of patches against files the slot holds) and download it;
//! `check_downloads`; `assemble` each file into the other slot; only then arm a trial boot.

mod assemble;
pub mod bounded;
mod bundle;
mod chunking;
mod delta;
mod digest;
mod error;
mod key_list;
mod keys;
pub mod layout;
pub mod manifest;
#[allow(unsafe_code)] // mapping the running slot's file (`patch::map`)
pub mod patch;
pub mod pointer;
mod publish;
mod rollout;
mod signature;
mod trust;
mod version;

pub use assemble::{assemble, check_downloads};
pub use bundle::{BundleInput, BundleOutput, write_bundle};
pub use chunking::{
    ChunkIndex, ChunkRef, ChunkerParams, FileChunks, chunk_file, chunk_stream, total_length,
};
pub use delta::{DeltaReport, measure};
pub use digest::Sha256Digest;
pub use error::{Error, Result};
pub use key_list::{KeyList, ListedKey, Lookup, SignedKeyList};
pub use keys::{KeyId, KeyKind, PublicKey, SecretKey, public_path_for};
pub use manifest::{Artifact, CheckedManifest, Manifest, Patch, UpdateCheck, Verity};
pub use patch::{Plan, plan};
pub use pointer::{ChannelPointer, CheckedPointer, PointerCheck};
pub use publish::{PublishRequest, Published, publish};
pub use rollout::{WHOLE_FLEET, in_wave, permille_from_fraction};
pub use signature::{DetachedSignature, Purpose};
pub use trust::{Offer, Trust};
pub use version::Version;

#[cfg(test)]
mod tests;
