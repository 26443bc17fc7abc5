//! The key list: which signing keys the box trusts, signed by the root key. The image carries
//! one (/etc/carapace/update-keys.json); a newer one (a higher serial, signed by the same root
//! key) replaces it, so signing keys rotate, and a lost one is revoked, without a new image.
//!
//! The file is one JSON object carrying the list and the root key's signature of it:
//! ```text
//! {"format":1,
//!  "key_list":{"serial":3,
//!              "keys":[{"id":"…","public_key":"<64 hex>","not_after":1798761599}],
//!              "revoked":["<16 hex>"]},
//!  "signature":{"key_id":"<root id>","ed25519":"<128 hex>"}}
//! ```
//! The signature covers the list's compact JSON with the fields in the order above (what
//! `serde_json::to_vec(&KeyList)` writes), so the file can be pretty-printed, and so one list
//! has one signed form whatever whitespace a file carries.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::bounded::MAX_KEY_LIST;
use crate::bounded::{check_format, parse_json};
use crate::error::{Error, Result};
use crate::keys::{KeyId, KeyKind, PublicKey, SecretKey};
use crate::signature::{DetachedSignature, Purpose};

pub const FORMAT: u32 = 1;

/// Enough for years of rotations; the bounds keep a list from growing without end.
const MAX_KEYS: usize = 64;
const MAX_REVOKED: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    /// Higher is newer; a box never goes back to a lower serial.
    pub serial: u64,
    pub keys: Vec<ListedKey>,
    /// Keys that must never be trusted again, whatever an older list said.
    #[serde(default)]
    pub revoked: Vec<KeyId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedKey {
    pub id: KeyId,
    pub public_key: String,
    /// Seconds since 1970 after which the box no longer accepts the key's signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
}

impl ListedKey {
    pub fn public(&self) -> Result<PublicKey, String> {
        PublicKey::from_hex(KeyKind::Signing, &self.public_key)
    }
}

/// What a list says about a key id.
#[derive(Debug)]
pub enum Lookup<'a> {
    Trusted(&'a ListedKey),
    Revoked,
    Unknown,
}

impl KeyList {
    /// The rules every list keeps: ids are the keys' own, no key listed twice, none both listed
    /// and revoked.
    pub fn validate(&self) -> Result<(), String> {
        if self.serial == 0 {
            return Err("serial must be 1 or more".into());
        }
        if self.keys.len() > MAX_KEYS || self.revoked.len() > MAX_REVOKED {
            return Err(format!(
                "at most {MAX_KEYS} keys and {MAX_REVOKED} revoked ids"
            ));
        }
        let mut seen = HashSet::new();
        for key in &self.keys {
            let public = key.public()?;
            if public.id() != key.id {
                return Err(format!(
                    "key {} has the id of another key (its own is {})",
                    key.id,
                    public.id()
                ));
            }
            if !seen.insert(key.id) {
                return Err(format!("key {} is listed twice", key.id));
            }
        }
        if let Some(both) = self.revoked.iter().find(|id| seen.contains(*id)) {
            return Err(format!("key {both} is both listed and revoked"));
        }
        Ok(())
    }

    pub fn lookup(&self, id: KeyId) -> Lookup<'_> {
        if self.revoked.contains(&id) {
            return Lookup::Revoked;
        }
        match self.keys.iter().find(|key| key.id == id) {
            Some(key) => Lookup::Trusted(key),
            None => Lookup::Unknown,
        }
    }

    /// The bytes the root key signs.
    fn signed_bytes(&self) -> Vec<u8> {
        // A struct of integers, hex strings and vectors of them serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks a detached signature against this list: the key must be listed, not revoked and
    /// not expired at `now`, and the signature must verify.
    pub(crate) fn verify(
        &self,
        purpose: Purpose,
        bytes: &[u8],
        signature: &DetachedSignature,
        now: u64,
    ) -> Result<KeyId> {
        let what = purpose.what().to_owned();
        let key_id = signature.key_id;
        match self.lookup(key_id) {
            Lookup::Revoked => Err(Error::KeyRevoked {
                what,
                key_id,
                serial: self.serial,
            }),
            Lookup::Unknown => Err(Error::UnknownKey {
                what,
                key_id,
                serial: self.serial,
            }),
            Lookup::Trusted(listed) => {
                if let Some(not_after) = listed.not_after.filter(|&t| now > t) {
                    return Err(Error::KeyExpired {
                        what,
                        key_id,
                        not_after,
                        now,
                    });
                }
                let public = listed
                    .public()
                    .map_err(|reason| Error::malformed("the key list", reason))?;
                signature.verify(&public, purpose, bytes)?;
                Ok(key_id)
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: u32,
    key_list: KeyList,
    signature: DetachedSignature,
}

/// A key list with the root key's signature; [`SignedKeyList::verify`] says whether to trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedKeyList {
    list: KeyList,
    signature: DetachedSignature,
}

impl SignedKeyList {
    pub fn sign(list: KeyList, root: &SecretKey) -> Result<SignedKeyList> {
        list.validate()
            .map_err(|reason| Error::malformed("the key list", reason))?;
        let signature = DetachedSignature::sign(root, Purpose::KeyList, &list.signed_bytes())?;
        Ok(SignedKeyList { list, signature })
    }

    /// Parses the file and checks the list's rules; the signature is checked by `verify`.
    pub fn parse(bytes: &[u8]) -> Result<SignedKeyList> {
        let what = "the key list";
        let envelope: Envelope = parse_json(bytes, MAX_KEY_LIST, what)?;
        check_format(envelope.format, FORMAT).map_err(|reason| Error::malformed(what, reason))?;
        envelope
            .key_list
            .validate()
            .map_err(|reason| Error::malformed(what, reason))?;
        Ok(SignedKeyList {
            list: envelope.key_list,
            signature: envelope.signature,
        })
    }

    pub fn to_file_text(&self) -> String {
        let envelope = Envelope {
            format: FORMAT,
            key_list: self.list.clone(),
            signature: self.signature.clone(),
        };
        let mut text = serde_json::to_string_pretty(&envelope).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The list, once its signature verifies with `root`.
    pub fn verify(&self, root: &PublicKey) -> Result<&KeyList> {
        root.kind()
            .require(KeyKind::Root, "the key that checks key lists")?;
        if self.signature.key_id != root.id() {
            return Err(Error::NotRootSigned {
                root: root.id(),
                signer: self.signature.key_id,
            });
        }
        self.signature
            .verify(root, Purpose::KeyList, &self.list.signed_bytes())?;
        Ok(&self.list)
    }

    /// The list without checking who signed it: for the publisher's own consistency checks,
    /// never for a decision to trust.
    pub fn unverified(&self) -> &KeyList {
        &self.list
    }

    pub fn serial(&self) -> u64 {
        self.list.serial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(byte: u8) -> SecretKey {
        SecretKey::from_seed(KeyKind::Signing, &[byte; 32])
    }

    fn listed(key: &SecretKey) -> ListedKey {
        ListedKey {
            id: key.id(),
            public_key: key.public().to_hex(),
            not_after: None,
        }
    }

    #[test]
    fn signed_by_the_root_it_verifies_whatever_the_whitespace() {
        let root = SecretKey::from_seed(KeyKind::Root, &[9; 32]);
        let list = KeyList {
            serial: 2,
            keys: vec![listed(&signing(1))],
            revoked: vec![signing(2).id()],
        };
        let signed = SignedKeyList::sign(list.clone(), &root).unwrap();
        let text = signed.to_file_text();
        let parsed = SignedKeyList::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.verify(&root.public()).unwrap(), &list);
        let compact: serde_json::Value = serde_json::from_str(&text).unwrap();
        let compact = serde_json::to_vec(&compact).unwrap();
        SignedKeyList::parse(&compact)
            .unwrap()
            .verify(&root.public())
            .unwrap();
    }

    #[test]
    fn a_changed_list_or_another_root_is_refused() {
        let root = SecretKey::from_seed(KeyKind::Root, &[9; 32]);
        let list = KeyList {
            serial: 2,
            keys: vec![listed(&signing(1))],
            revoked: vec![],
        };
        let text = SignedKeyList::sign(list, &root).unwrap().to_file_text();
        let raised = text.replace("\"serial\": 2", "\"serial\": 3");
        assert_ne!(raised, text);
        let err = SignedKeyList::parse(raised.as_bytes())
            .unwrap()
            .verify(&root.public())
            .unwrap_err();
        assert!(matches!(err, Error::BadSignature { .. }), "{err}");

        let other_root = SecretKey::from_seed(KeyKind::Root, &[8; 32]);
        let err = SignedKeyList::parse(text.as_bytes())
            .unwrap()
            .verify(&other_root.public())
            .unwrap_err();
        assert!(matches!(err, Error::NotRootSigned { .. }), "{err}");
        // A signing key's public half is not a root key.
        let err = SignedKeyList::parse(text.as_bytes())
            .unwrap()
            .verify(&signing(1).public())
            .unwrap_err();
        assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
    }

    #[test]
    fn lists_that_break_the_rules_are_refused() {
        let root = SecretKey::from_seed(KeyKind::Root, &[9; 32]);
        let one = listed(&signing(1));
        let mut wrong_id = listed(&signing(2));
        wrong_id.id = signing(3).id();
        for (list, reason) in [
            (
                KeyList {
                    serial: 0,
                    keys: vec![],
                    revoked: vec![],
                },
                "serial",
            ),
            (
                KeyList {
                    serial: 1,
                    keys: vec![one.clone(), one.clone()],
                    revoked: vec![],
                },
                "twice",
            ),
            (
                KeyList {
                    serial: 1,
                    keys: vec![one.clone()],
                    revoked: vec![one.id],
                },
                "both listed and revoked",
            ),
            (
                KeyList {
                    serial: 1,
                    keys: vec![wrong_id],
                    revoked: vec![],
                },
                "id of another key",
            ),
        ] {
            let err = SignedKeyList::sign(list, &root).unwrap_err();
            assert!(err.to_string().contains(reason), "{reason}: {err}");
        }
    }
}
