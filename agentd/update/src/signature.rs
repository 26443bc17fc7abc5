//! Detached ed25519 signatures: `manifest.sig` beside `manifest.json`, `<channel>.sig` beside
//! `<channel>.json`. The file is `{"key_id":"<16 hex>","ed25519":"<128 hex>"}`: the key id comes
//! with the signature, so the box picks the key and checks the signature before it parses a
//! byte of what was signed.
//!
//! What is signed is a context string naming the kind of document, a zero byte, then the exact
//! bytes of the file: a signature over a manifest can never pass for one over a channel pointer
//! or a key list, whatever their bytes.

use std::fmt;

use ed25519_dalek::{SIGNATURE_LENGTH, Signature, Signer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounded::MAX_SIGNATURE;
use crate::digest::decode_lower_hex;
use crate::error::{Error, Result};
use crate::keys::{KeyId, KeyKind, PublicKey, SecretKey};

/// The kinds of signed documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Manifest,
    ChannelPointer,
    KeyList,
    /// A model pack's manifest (carapace-models' pack.rs): models the owner adds beside the
    /// image's, signed with the same signing keys as updates.
    ModelPack,
    /// A skill pack's manifest (carapace-skills' pack.rs): a skill folder signed with the same
    /// signing keys, for a recipe's [[skill_pack]] or the owner to send in the chat.
    SkillPack,
}

impl Purpose {
    fn context(self) -> &'static [u8] {
        match self {
            Purpose::Manifest => b"carapace-update manifest v1\0",
            Purpose::ChannelPointer => b"carapace-update channel pointer v1\0",
            Purpose::KeyList => b"carapace-update key list v1\0",
            Purpose::ModelPack => b"carapace model pack v1\0",
            Purpose::SkillPack => b"carapace skill pack v1\0",
        }
    }

    /// The document, as errors name it.
    pub fn what(self) -> &'static str {
        match self {
            Purpose::Manifest => "the manifest",
            Purpose::ChannelPointer => "the channel pointer",
            Purpose::KeyList => "the key list",
            Purpose::ModelPack => "the model pack",
            Purpose::SkillPack => "the skill pack",
        }
    }

    /// Key lists are the root key's to sign; everything else a signing key's.
    fn signer(self) -> KeyKind {
        match self {
            Purpose::KeyList => KeyKind::Root,
            Purpose::Manifest
            | Purpose::ChannelPointer
            | Purpose::ModelPack
            | Purpose::SkillPack => KeyKind::Signing,
        }
    }

    fn message(self, bytes: &[u8]) -> Vec<u8> {
        let context = self.context();
        let mut message = Vec::with_capacity(context.len() + bytes.len());
        message.extend_from_slice(context);
        message.extend_from_slice(bytes);
        message
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519Signature([u8; SIGNATURE_LENGTH]);

impl Serialize for Ed25519Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Ed25519Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        decode_lower_hex::<SIGNATURE_LENGTH>(&text)
            .map(Ed25519Signature)
            .ok_or_else(|| {
                serde::de::Error::custom("the signature is not 128 lower-case hex digits")
            })
    }
}

impl fmt::Debug for Ed25519Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Signature({})", hex::encode(self.0))
    }
}

/// A detached signature and the id of the key that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachedSignature {
    pub key_id: KeyId,
    pub ed25519: Ed25519Signature,
}

impl DetachedSignature {
    /// Signs `bytes` as a document of kind `purpose`; the key must be of the kind that signs it.
    pub fn sign(key: &SecretKey, purpose: Purpose, bytes: &[u8]) -> Result<DetachedSignature> {
        key.kind().require(
            purpose.signer(),
            format!("the key {} given to sign {}", key.id(), purpose.what()),
        )?;
        let signature = key.signing_key().sign(&purpose.message(bytes));
        Ok(DetachedSignature {
            key_id: key.id(),
            ed25519: Ed25519Signature(signature.to_bytes()),
        })
    }

    /// Parses a `.sig` file; `what` names the document it signs.
    pub fn parse(bytes: &[u8], what: &str) -> Result<DetachedSignature> {
        let whose = format!("the signature of {what}");
        crate::bounded::check(bytes, MAX_SIGNATURE, &whose)?;
        serde_json::from_slice(bytes).map_err(|e| Error::malformed(whose, e.to_string()))
    }

    pub fn to_file_text(&self) -> String {
        // A struct of two strings serializes.
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Checks the signature with `key`, which the caller chose by this signature's key id.
    /// Strict verification: no malleable or small-order signatures.
    pub(crate) fn verify(&self, key: &PublicKey, purpose: Purpose, bytes: &[u8]) -> Result<()> {
        let signature = Signature::from_bytes(&self.ed25519.0);
        if key.id() != self.key_id {
            return Err(Error::SignerMismatch {
                what: purpose.what().to_owned(),
                inside: key.id(),
                signer: self.key_id,
            });
        }
        key.verifying_key()
            .verify_strict(&purpose.message(bytes), &signature)
            .map_err(|_| Error::BadSignature {
                what: purpose.what().to_owned(),
                key_id: self.key_id,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: KeyKind, byte: u8) -> SecretKey {
        SecretKey::from_seed(kind, &[byte; 32])
    }

    #[test]
    fn verifies_only_the_same_bytes_for_the_same_purpose() {
        let signing = key(KeyKind::Signing, 1);
        let sig = DetachedSignature::sign(&signing, Purpose::Manifest, b"manifest bytes").unwrap();
        let public = signing.public();
        sig.verify(&public, Purpose::Manifest, b"manifest bytes")
            .unwrap();
        for (purpose, bytes) in [
            (Purpose::Manifest, &b"manifest bytez"[..]),
            (Purpose::Manifest, b"manifest bytes "),
            (Purpose::ChannelPointer, b"manifest bytes"),
            (Purpose::ModelPack, b"manifest bytes"),
            (Purpose::SkillPack, b"manifest bytes"),
        ] {
            let err = sig.verify(&public, purpose, bytes).unwrap_err();
            assert!(matches!(err, Error::BadSignature { .. }), "{err}");
        }
    }

    #[test]
    fn the_file_round_trips_and_is_strict() {
        let sig = DetachedSignature::sign(&key(KeyKind::Signing, 2), Purpose::ChannelPointer, b"x")
            .unwrap();
        let text = sig.to_file_text();
        assert_eq!(DetachedSignature::parse(text.as_bytes(), "p").unwrap(), sig);
        let hex_sig = hex::encode(sig.ed25519.0);
        for bad in [
            text.replace(&hex_sig, &hex_sig.to_uppercase()),
            text.replace(&hex_sig, &hex_sig[2..]),
            text.replace('}', ",\"by\":\"me\"}"),
            "{}".to_owned(),
            "x".repeat(MAX_SIGNATURE as usize + 1),
        ] {
            assert!(
                DetachedSignature::parse(bad.as_bytes(), "p").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_document_needs_its_kind_of_key() {
        let root = key(KeyKind::Root, 3);
        let signing = key(KeyKind::Signing, 4);
        assert!(DetachedSignature::sign(&root, Purpose::KeyList, b"l").is_ok());
        for (key, purpose) in [
            (&root, Purpose::Manifest),
            (&root, Purpose::ChannelPointer),
            (&signing, Purpose::KeyList),
        ] {
            let err = DetachedSignature::sign(key, purpose, b"d").unwrap_err();
            assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
        }
    }
}
