//! Update keys and their files. Two kinds: the root key, kept offline by the vendor, signs only
//! key lists; signing keys, named by a key list, sign manifests and channel pointers. A key is
//! known by its id, the first 8 bytes of the SHA-256 of its public key in hex.
//!
//! Files (JSON): the public half `{"kind":"signing","id":"…","public_key":"<64 hex>"}`, written
//! next to the secret as `<name>.pub`; the secret half `{…,"secret_key":"<64 hex seed>"}`,
//! created 0600 and never overwritten, refused when others can read it or it is a symlink.
//! Secrets are never printed: `Debug` shows the kind and id only.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SECRET_KEY_LENGTH, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bounded::MAX_KEY_FILE;
use crate::digest::decode_lower_hex;
use crate::error::{Error, Result};

/// The first 8 bytes of SHA-256(public key), as 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    pub fn parse(text: &str) -> Option<KeyId> {
        decode_lower_hex::<8>(text).map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;

    fn from_str(text: &str) -> Result<KeyId, String> {
        KeyId::parse(text)
            .ok_or_else(|| format!("{text:?} is not a key id (16 lower-case hex digits)"))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Signs key lists only; its public half is built into the image.
    Root,
    /// Signs manifests and channel pointers; trusted while a key list names it.
    Signing,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Root => "root",
            KeyKind::Signing => "signing",
        })
    }
}

impl KeyKind {
    /// What to do when a key of the other kind was given.
    fn hint(expected: KeyKind) -> &'static str {
        match expected {
            KeyKind::Root => {
                "key lists are signed with the root key (made by `carapace keygen --root`)"
            }
            KeyKind::Signing => {
                "the root key signs only key lists; updates and channels are signed with a \
                 signing key (made by `carapace keygen`) that a key list names"
            }
        }
    }

    pub(crate) fn require(self, expected: KeyKind, whose: impl Into<String>) -> Result<()> {
        if self == expected {
            return Ok(());
        }
        Err(Error::WrongKeyKind {
            whose: whose.into(),
            expected,
            found: self,
            hint: KeyKind::hint(expected),
        })
    }
}

/// A public key of a known kind.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    key: VerifyingKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyFile {
    kind: KeyKind,
    id: KeyId,
    public_key: String,
}

impl PublicKey {
    /// From 64 hex digits (the form recipes and key lists carry). Weak keys (small-order
    /// points), which would accept forged signatures, are refused.
    pub fn from_hex(kind: KeyKind, text: &str) -> Result<PublicKey, String> {
        let bytes = decode_lower_hex::<32>(text)
            .ok_or_else(|| format!("{text:?} is not a public key (64 lower-case hex digits)"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| format!("{text} is not an ed25519 public key"))?;
        if key.is_weak() {
            return Err(format!(
                "{text} is a weak ed25519 key and cannot be trusted"
            ));
        }
        Ok(PublicKey { kind, key })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.key)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The public key file's text.
    pub fn to_file_text(&self) -> String {
        let file = PublicKeyFile {
            kind: self.kind,
            id: self.id(),
            public_key: self.to_hex(),
        };
        // A struct of strings serializes.
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a public key file; `what` names it in errors. The id must be the key's own: an
    /// edited id would make the file say one key and mean another.
    pub fn parse_file(bytes: &[u8], what: &str) -> Result<PublicKey> {
        crate::bounded::check(bytes, MAX_KEY_FILE, what)?;
        let file: PublicKeyFile =
            serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e.to_string()))?;
        let key = PublicKey::from_hex(file.kind, &file.public_key)
            .map_err(|reason| Error::malformed(what, reason))?;
        if key.id() != file.id {
            return Err(Error::malformed(
                what,
                format!("its id {} is not its key's id {}", file.id, key.id()),
            ));
        }
        Ok(key)
    }

    pub fn load(path: &Path) -> Result<PublicKey> {
        let what = format!("public key file {}", path.display());
        let bytes = crate::bounded::read_file(path, MAX_KEY_FILE, "public key file")?;
        PublicKey::parse_file(&bytes, &what)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.kind, self.id())
    }
}

/// A secret key of a known kind. The seed is wiped from memory when it is dropped.
pub struct SecretKey {
    kind: KeyKind,
    key: SigningKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile<'a> {
    kind: KeyKind,
    id: KeyId,
    // Borrowed from the zeroized buffer the file was read into: no second copy of the seed.
    #[serde(borrow)]
    secret_key: &'a str,
}

impl SecretKey {
    pub fn generate(kind: KeyKind) -> Result<SecretKey> {
        let mut seed = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
        getrandom::fill(seed.as_mut_slice()).map_err(Error::Entropy)?;
        Ok(SecretKey::from_seed(kind, &seed))
    }

    /// For tests and known-answer checks; real keys come from [`SecretKey::generate`].
    pub fn from_seed(kind: KeyKind, seed: &[u8; SECRET_KEY_LENGTH]) -> SecretKey {
        SecretKey {
            kind,
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.key.verifying_key())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            kind: self.kind,
            key: self.key.verifying_key(),
        }
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Writes the secret to `path` (0600) and the public key to `<path>.pub` (0644); refuses
    /// when either exists, before writing anything. Returns the public key's path.
    pub fn write_new(&self, path: &Path) -> Result<PathBuf> {
        let public_path = public_path_for(path);
        for existing in [path, public_path.as_path()] {
            if existing.symlink_metadata().is_ok() {
                return Err(Error::KeyFileExists {
                    path: existing.to_owned(),
                });
            }
        }
        let seed_hex = Zeroizing::new(hex::encode(self.key.as_bytes()));
        let secret = Zeroizing::new(format!(
            "{{\n  \"kind\": \"{}\",\n  \"id\": \"{}\",\n  \"secret_key\": \"{}\"\n}}\n",
            self.kind,
            self.id(),
            seed_hex.as_str()
        ));
        write_new_file(path, secret.as_bytes(), 0o600)?;
        write_new_file(&public_path, self.public().to_file_text().as_bytes(), 0o644)?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        board_support::atomic_file::sync_dir(dir).map_err(Error::io("fsync", dir))?;
        Ok(public_path)
    }

    /// Reads a secret key file of the `expected` kind.
    pub fn load(path: &Path, expected: KeyKind) -> Result<SecretKey> {
        let what = format!("secret key file {}", path.display());
        // O_NOFOLLOW: a symlink must not point the signer at some other file.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(Error::io("open", path))?;
        let metadata = file.metadata().map_err(Error::io("inspect", path))?;
        if !metadata.is_file() {
            return Err(Error::malformed(what, "it is not a regular file"));
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFileExposed {
                path: path.to_owned(),
                mode,
            });
        }
        let mut text = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut text)
            .map_err(Error::io("read", path))?;
        crate::bounded::check(&text, MAX_KEY_FILE, &what)?;
        let file: SecretKeyFile = serde_json::from_slice(&text)
            .map_err(|e| Error::malformed(&what, format!("{e} (not a secret key file)")))?;
        let seed = decode_lower_hex::<SECRET_KEY_LENGTH>(file.secret_key)
            .map(Zeroizing::new)
            .ok_or_else(|| Error::malformed(&what, "secret_key is not 64 lower-case hex digits"))?;
        let key = SecretKey::from_seed(file.kind, &seed);
        if key.id() != file.id {
            return Err(Error::malformed(
                &what,
                format!("its id {} is not its key's id {}", file.id, key.id()),
            ));
        }
        key.kind.require(expected, what)?;
        Ok(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey({} {}, secret not shown)",
            self.kind,
            self.id()
        )
    }
}

/// `<secret>.pub`, beside the secret.
pub fn public_path_for(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => Error::KeyFileExists {
                path: path.to_owned(),
            },
            _ => Error::Io {
                action: "create",
                path: path.to_owned(),
                source,
            },
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// RFC 8032, section 7.1, test 1.
    const SEED: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn the_id_is_the_head_of_the_public_keys_sha256() {
        let key = SecretKey::from_seed(KeyKind::Signing, &SEED);
        assert_eq!(key.public().to_hex(), PUBLIC);
        let digest = Sha256::digest(hex::decode(PUBLIC).unwrap());
        assert_eq!(key.id().to_string(), hex::encode(&digest[..8]));
    }

    #[test]
    fn written_keys_load_back_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let key = SecretKey::generate(KeyKind::Signing).unwrap();
        let public_path = key.write_new(&path).unwrap();
        assert_eq!(public_path, dir.path().join("signing.key.pub"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = SecretKey::load(&path, KeyKind::Signing).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(PublicKey::load(&public_path).unwrap(), key.public());
        let text = fs::read_to_string(&public_path).unwrap();
        assert!(text.contains(&key.id().to_string()), "{text}");
        let seed_hex = hex::encode(key.key.as_bytes());
        assert!(!format!("{loaded:?}").contains(&seed_hex));
        assert!(!text.contains(&seed_hex));

        let before = fs::read(&path).unwrap();
        let other = SecretKey::generate(KeyKind::Signing).unwrap();
        let err = other.write_new(&path).unwrap_err();
        assert!(matches!(err, Error::KeyFileExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before, "never overwritten");
        // The public half existing alone also stops it, before the secret is written.
        let lone = dir.path().join("lone.key");
        fs::write(public_path_for(&lone), "x").unwrap();
        assert!(matches!(
            other.write_new(&lone).unwrap_err(),
            Error::KeyFileExists { .. }
        ));
        assert!(!lone.exists());
    }

    #[test]
    fn a_key_of_the_other_kind_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        SecretKey::generate(KeyKind::Root)
            .unwrap()
            .write_new(&path)
            .unwrap();
        let err = SecretKey::load(&path, KeyKind::Signing).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongKeyKind {
                    expected: KeyKind::Signing,
                    found: KeyKind::Root,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("carapace keygen"), "{err}");
    }

    #[test]
    fn exposed_symlinked_or_edited_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = SecretKey::from_seed(KeyKind::Signing, &SEED);
        key.write_new(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = SecretKey::load(&path, KeyKind::Signing).unwrap_err();
        assert!(
            matches!(err, Error::KeyFileExposed { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            SecretKey::load(&link, KeyKind::Signing).unwrap_err(),
            Error::Io { action: "open", .. }
        ));

        let text = fs::read_to_string(&path).unwrap();
        let other_id = SecretKey::generate(KeyKind::Signing).unwrap().id();
        fs::write(
            &path,
            text.replace(&key.id().to_string(), &other_id.to_string()),
        )
        .unwrap();
        let err = SecretKey::load(&path, KeyKind::Signing).unwrap_err();
        assert!(err.to_string().contains("is not its key's id"), "{err}");
    }

    #[test]
    fn public_key_files_are_checked() {
        let key = SecretKey::from_seed(KeyKind::Root, &SEED).public();
        let text = key.to_file_text();
        assert_eq!(PublicKey::parse_file(text.as_bytes(), "t").unwrap(), key);
        for bad in [
            text.replace(PUBLIC, &PUBLIC.to_uppercase()),
            text.replace("\"root\"", "\"admin\""),
            text.replace(&key.id().to_string(), "0000000000000000"),
            text.replace('}', ", \"extra\": 1}"),
            // The identity point, of small order: it would accept forged signatures.
            text.replace(PUBLIC, &format!("01{}", "0".repeat(62))),
        ] {
            assert!(
                matches!(
                    PublicKey::parse_file(bad.as_bytes(), "t"),
                    Err(Error::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
