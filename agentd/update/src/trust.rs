//! What the box trusts: the root public key built into its verified root, and the newest key
//! list signed by that root key that it has seen. It starts from the image's list; a newer one
//! comes from the update server's `keys.json` (see `layout`), fetched before the channel
//! pointer, and is kept on /data by the update service; a list with a serial no higher than
//! the current one changes nothing.

use std::path::Path;

use crate::bounded::MAX_KEY_LIST;
use crate::error::{Error, Result};
use crate::key_list::{KeyList, ListedKey, SignedKeyList};
use crate::keys::{KeyId, KeyKind, PublicKey, SecretKey};
use crate::signature::{DetachedSignature, Purpose};

#[derive(Clone, Debug)]
pub struct Trust {
    root: PublicKey,
    list: KeyList,
    signed: SignedKeyList,
}

/// What offering a key list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// The list was newer and now decides.
    Replaced { from: u64, to: u64 },
    /// The list was not newer; the current one stays.
    Kept { serial: u64 },
}

impl Trust {
    pub fn new(root: PublicKey, list: &SignedKeyList) -> Result<Trust> {
        let verified = list.verify(&root)?.clone();
        Ok(Trust {
            root,
            list: verified,
            signed: list.clone(),
        })
    }

    /// Trust in `signing` keys, listed (serial 1, no expiry) by a list that `root` signs: for
    /// tests and tools that hold the secret keys themselves.
    pub fn of_keys(root: &SecretKey, signing: &[&SecretKey]) -> Result<Trust> {
        let list = KeyList {
            serial: 1,
            keys: signing
                .iter()
                .map(|key| ListedKey {
                    id: key.id(),
                    public_key: key.public().to_hex(),
                    not_after: None,
                })
                .collect(),
            revoked: Vec::new(),
        };
        Trust::new(root.public(), &SignedKeyList::sign(list, root)?)
    }

    /// The image's trust: the root public key file and the key list file (on the box,
    /// /etc/carapace/update-root.pub and /etc/carapace/update-keys.json).
    pub fn load(root_key: &Path, key_list: &Path) -> Result<Trust> {
        let root = PublicKey::load(root_key)?;
        root.kind().require(
            KeyKind::Root,
            format!("public key file {}", root_key.display()),
        )?;
        let bytes = crate::bounded::read_file(key_list, MAX_KEY_LIST, "key list")?;
        let list = SignedKeyList::parse(&bytes).map_err(|err| match err {
            Error::Malformed { reason, .. } => {
                Error::malformed(format!("key list {}", key_list.display()), reason)
            }
            other => other,
        })?;
        Trust::new(root, &list)
    }

    pub fn root(&self) -> &PublicKey {
        &self.root
    }

    pub fn key_list(&self) -> &KeyList {
        &self.list
    }

    /// The list in force, with its signature, for the update service to keep on /data.
    pub fn signed_key_list(&self) -> &SignedKeyList {
        &self.signed
    }

    pub fn serial(&self) -> u64 {
        self.list.serial
    }

    /// Takes `list` if the root key signed it and its serial is higher than the current one.
    pub fn offer(&mut self, list: &SignedKeyList) -> Result<Offer> {
        let verified = list.verify(&self.root)?;
        let from = self.list.serial;
        if verified.serial <= from {
            return Ok(Offer::Kept { serial: from });
        }
        self.list = verified.clone();
        self.signed = list.clone();
        Ok(Offer::Replaced {
            from,
            to: verified.serial,
        })
    }

    /// A signed JSON document beside its `.sig` file (a pack's manifest): the signature
    /// checked first, then the bytes parsed, so nothing unsigned is parsed. Err says which step
    /// failed, in words for the caller's own error; Ok has the key that signed it.
    pub fn open_signed<T: serde::de::DeserializeOwned>(
        &self,
        purpose: Purpose,
        document: &[u8],
        signature_file: &[u8],
        name: &str,
        now: u64,
    ) -> std::result::Result<(T, KeyId), String> {
        let signature =
            DetachedSignature::parse(signature_file, name).map_err(|error| error.to_string())?;
        let signed_by = self
            .verify(purpose, document, &signature, now)
            .map_err(|error| format!("its signature does not hold: {error}"))?;
        let parsed =
            serde_json::from_slice(document).map_err(|error| format!("{name}: {error}"))?;
        Ok((parsed, signed_by))
    }

    /// Checks a detached signature of a document: the key it names must be in the list, not
    /// revoked, not expired at `now` (seconds since 1970).
    pub fn verify(
        &self,
        purpose: Purpose,
        bytes: &[u8],
        signature: &DetachedSignature,
        now: u64,
    ) -> Result<KeyId> {
        self.list.verify(purpose, bytes, signature, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_list::ListedKey;
    use crate::keys::SecretKey;

    struct Keys {
        root: SecretKey,
        old: SecretKey,
        new: SecretKey,
    }

    fn keys() -> Keys {
        Keys {
            root: SecretKey::from_seed(KeyKind::Root, &[1; 32]),
            old: SecretKey::from_seed(KeyKind::Signing, &[2; 32]),
            new: SecretKey::from_seed(KeyKind::Signing, &[3; 32]),
        }
    }

    fn list(
        root: &SecretKey,
        serial: u64,
        keys: &[(&SecretKey, Option<u64>)],
        revoked: &[&SecretKey],
    ) -> SignedKeyList {
        let list = KeyList {
            serial,
            keys: keys
                .iter()
                .map(|(key, not_after)| ListedKey {
                    id: key.id(),
                    public_key: key.public().to_hex(),
                    not_after: *not_after,
                })
                .collect(),
            revoked: revoked.iter().map(|key| key.id()).collect(),
        };
        SignedKeyList::sign(list, root).unwrap()
    }

    fn signed(key: &SecretKey, bytes: &[u8]) -> DetachedSignature {
        DetachedSignature::sign(key, Purpose::Manifest, bytes).unwrap()
    }

    #[test]
    fn rotation_and_revocation_through_a_newer_list() {
        let k = keys();
        let mut trust =
            Trust::new(k.root.public(), &list(&k.root, 1, &[(&k.old, None)], &[])).unwrap();
        trust
            .verify(Purpose::Manifest, b"m", &signed(&k.old, b"m"), 0)
            .unwrap();
        let err = trust
            .verify(Purpose::Manifest, b"m", &signed(&k.new, b"m"), 0)
            .unwrap_err();
        assert!(matches!(err, Error::UnknownKey { serial: 1, .. }), "{err}");

        // Serial 2 adds the new key and revokes the old one (lost, say).
        let rotated = list(&k.root, 2, &[(&k.new, None)], &[&k.old]);
        assert_eq!(
            trust.offer(&rotated).unwrap(),
            Offer::Replaced { from: 1, to: 2 }
        );
        trust
            .verify(Purpose::Manifest, b"m", &signed(&k.new, b"m"), 0)
            .unwrap();
        let err = trust
            .verify(Purpose::Manifest, b"m", &signed(&k.old, b"m"), 0)
            .unwrap_err();
        assert!(matches!(err, Error::KeyRevoked { serial: 2, .. }), "{err}");

        // An older list played back changes nothing.
        let old = list(&k.root, 1, &[(&k.old, None)], &[]);
        assert_eq!(trust.offer(&old).unwrap(), Offer::Kept { serial: 2 });
        assert!(
            trust
                .verify(Purpose::Manifest, b"m", &signed(&k.old, b"m"), 0)
                .is_err()
        );
        assert_eq!(trust.signed_key_list(), &rotated);
    }

    #[test]
    fn a_list_signed_by_another_root_is_not_taken() {
        let k = keys();
        let mut trust =
            Trust::new(k.root.public(), &list(&k.root, 1, &[(&k.old, None)], &[])).unwrap();
        let impostor = SecretKey::from_seed(KeyKind::Root, &[7; 32]);
        let err = trust
            .offer(&list(&impostor, 9, &[(&k.new, None)], &[]))
            .unwrap_err();
        assert!(matches!(err, Error::NotRootSigned { .. }), "{err}");
        assert_eq!(trust.serial(), 1);
    }

    #[test]
    fn an_expired_key_is_refused_after_its_date_only() {
        let k = keys();
        let trust = Trust::new(
            k.root.public(),
            &list(&k.root, 1, &[(&k.old, Some(1000))], &[]),
        )
        .unwrap();
        let sig = signed(&k.old, b"m");
        trust.verify(Purpose::Manifest, b"m", &sig, 1000).unwrap();
        let err = trust
            .verify(Purpose::Manifest, b"m", &sig, 1001)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::KeyExpired {
                    not_after: 1000,
                    now: 1001,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn loads_the_image_files() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("update-root.pub");
        let list_path = dir.path().join("update-keys.json");
        std::fs::write(&root_path, k.root.public().to_file_text()).unwrap();
        std::fs::write(
            &list_path,
            list(&k.root, 4, &[(&k.old, None)], &[]).to_file_text(),
        )
        .unwrap();
        assert_eq!(Trust::load(&root_path, &list_path).unwrap().serial(), 4);
        // A signing key in the root key's place is refused.
        std::fs::write(&root_path, k.old.public().to_file_text()).unwrap();
        let err = Trust::load(&root_path, &list_path).unwrap_err();
        assert!(matches!(err, Error::WrongKeyKind { .. }), "{err}");
    }
}
