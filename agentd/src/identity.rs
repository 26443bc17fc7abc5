//! The device identity: an ed25519 key pair made on first boot and kept in the state
//! directory for the life of the device. Its public half is what a paired phone knows the
//! device by, so it is never replaced behind anyone's back.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SECRET_KEY_LENGTH, SigningKey};
use zeroize::Zeroizing;

use crate::error::Error;

pub const FILE_NAME: &str = "identity.key";

/// The seed as lower-case hex and a newline, so the file can be checked by eye.
const SEED_HEX_LEN: usize = 2 * SECRET_KEY_LENGTH;
/// Room for the seed and a newline; anything longer is not an identity file.
const MAX_FILE_LEN: u64 = SEED_HEX_LEN as u64 + 1;

pub struct Identity {
    key: SigningKey,
}

/// Whether this start made the identity or found it; the console line says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Created,
    Loaded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Created => "created",
            Origin::Loaded => "loaded",
        })
    }
}

impl Identity {
    pub fn load_or_create(path: &Path) -> Result<(Identity, Origin), Error> {
        match load(path)? {
            Some(identity) => Ok((identity, Origin::Loaded)),
            None => Ok((create(path)?, Origin::Created)),
        }
    }

    /// The key that signs the audit log.
    pub fn signing_key(&self) -> SigningKey {
        self.key.clone()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }
}

/// `None` only when there is no file; a file that is there but unusable is an error, because
/// replacing it would silently give the device a new identity.
fn load(path: &Path) -> Result<Option<Identity>, Error> {
    let io_error = |action| {
        move |source| Error::IdentityIo {
            action,
            path: path.to_owned(),
            source,
        }
    };
    // O_NOFOLLOW: a symlink planted in the state directory must not redirect the key.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error("open")(err)),
    };
    let metadata = file.metadata().map_err(io_error("inspect"))?;
    if !metadata.is_file() {
        return Err(corrupt(path, "it is not a regular file"));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::IdentityExposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = read_limited(file).map_err(io_error("read"))?;
    let seed = parse_seed(&text).map_err(|reason| corrupt(path, reason))?;
    Ok(Some(Identity {
        key: SigningKey::from_bytes(&seed),
    }))
}

fn read_limited(file: File) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN as usize + 1));
    file.take(MAX_FILE_LEN + 1).read_to_end(&mut text)?;
    Ok(text)
}

fn parse_seed(text: &[u8]) -> Result<Zeroizing<[u8; SECRET_KEY_LENGTH]>, String> {
    let hex_digits = text.strip_suffix(b"\n").unwrap_or(text);
    if hex_digits.len() != SEED_HEX_LEN {
        return Err(format!(
            "it holds {} bytes, not {SEED_HEX_LEN} hex digits and a newline",
            text.len()
        ));
    }
    if !hex_digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return Err("it holds something other than lower-case hex digits".to_owned());
    }
    let mut seed = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
    hex::decode_to_slice(hex_digits, seed.as_mut_slice()).map_err(|err| err.to_string())?;
    Ok(seed)
}

fn create(path: &Path) -> Result<Identity, Error> {
    let mut seed = Zeroizing::new([0u8; SECRET_KEY_LENGTH]);
    getrandom::fill(seed.as_mut_slice()).map_err(Error::Entropy)?;
    let mut text = Zeroizing::new(hex::encode(seed.as_slice()));
    text.push('\n');
    board_support::atomic_file::write(path, text.as_bytes(), 0o600).map_err(|source| {
        Error::IdentityIo {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(Identity {
        key: SigningKey::from_bytes(&seed),
    })
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::IdentityCorrupt {
        path: PathBuf::from(path),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn key_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        (dir, path)
    }

    #[test]
    fn created_then_loaded_is_the_same_key() {
        let (_dir, path) = key_path();
        let (created, origin) = Identity::load_or_create(&path).unwrap();
        assert_eq!(origin, Origin::Created);
        let (loaded, origin) = Identity::load_or_create(&path).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(created.public_key_hex(), loaded.public_key_hex());
        assert_eq!(created.public_key_hex().len(), 64);
    }

    #[test]
    fn created_file_is_private_hex() {
        let (_dir, path) = key_path();
        Identity::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), SEED_HEX_LEN + 1);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn two_devices_differ() {
        let (_a, a) = key_path();
        let (_b, b) = key_path();
        let a = Identity::load_or_create(&a).unwrap().0.public_key_hex();
        let b = Identity::load_or_create(&b).unwrap().0.public_key_hex();
        assert_ne!(a, b);
    }

    #[test]
    fn known_seed_gives_known_public_key() {
        // RFC 8032, section 7.1, test 1.
        let (_dir, path) = key_path();
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n";
        write_private(&path, seed.as_bytes());
        let (identity, _) = Identity::load_or_create(&path).unwrap();
        assert_eq!(
            identity.public_key_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    fn write_private(path: &Path, contents: &[u8]) {
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn corrupt_files_are_refused_and_kept() {
        let (_dir, path) = key_path();
        let good = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let bad_files = [
            String::new(),
            good[..62].to_owned(),
            format!("{good}00"),
            good.to_uppercase(),
            format!("{}zz", &good[..62]),
            format!("{good}\n\n"),
            "x".repeat(4096),
        ];
        for contents in bad_files {
            write_private(&path, contents.as_bytes());
            let err = Identity::load_or_create(&path).err().unwrap();
            assert!(
                matches!(err, Error::IdentityCorrupt { .. }),
                "{contents:?}: {err}"
            );
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
            assert_eq!(
                fs::read(&path).unwrap(),
                contents.as_bytes(),
                "never overwritten"
            );
        }
    }

    #[test]
    fn readable_by_others_is_refused() {
        let (_dir, path) = key_path();
        Identity::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Identity::load_or_create(&path).err().unwrap();
            assert!(
                matches!(err, Error::IdentityExposed { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn symlink_is_refused() {
        let (dir, path) = key_path();
        let target = dir.path().join("elsewhere");
        write_private(
            &target,
            b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n",
        );
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = Identity::load_or_create(&path).err().unwrap();
        assert!(
            matches!(err, Error::IdentityIo { action: "open", .. }),
            "{err}"
        );
    }

    #[test]
    fn directory_is_refused() {
        let (_dir, path) = key_path();
        fs::create_dir(&path).unwrap();
        assert!(Identity::load_or_create(&path).is_err());
    }
}
