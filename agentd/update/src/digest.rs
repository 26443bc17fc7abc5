//! SHA-256 digests as the formats write them: 64 lower-case hex digits. One type, so that a
//! chunk name, a manifest field and a file's hash compare as bytes, never as spellings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    pub fn from_hasher(hasher: Sha256) -> Sha256Digest {
        Sha256Digest(hasher.finalize().into())
    }

    /// Only the canonical spelling: a second spelling of one hash would be a second name for
    /// one chunk file.
    pub fn parse(text: &str) -> Option<Sha256Digest> {
        decode_lower_hex::<32>(text).map(Sha256Digest)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256Digest::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a sha256 (64 lower-case hex digits)"
            ))
        })
    }
}

/// Exactly `2 * N` lower-case hex digits.
pub(crate) fn decode_lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !is_lower_hex(text) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

pub(crate) fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_parses() {
        let digest = Sha256Digest::of(b"abc");
        let text = digest.to_hex();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::parse(&text), Some(digest));
        assert_eq!(Sha256Digest::parse(&text.to_uppercase()), None);
        assert_eq!(Sha256Digest::parse(&text[1..]), None);
        assert_eq!(Sha256Digest::parse(&format!("{text}0")), None);
        assert_eq!(Sha256Digest::parse(&format!("{}g", &text[1..])), None);
    }

    #[test]
    fn json_round_trip_and_refusal() {
        let digest = Sha256Digest::of(b"x");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(serde_json::from_str::<Sha256Digest>(&json).unwrap(), digest);
        let err = serde_json::from_str::<Sha256Digest>("\"ABC\"").unwrap_err();
        assert!(err.to_string().contains("not a sha256"), "{err}");
    }
}
