//! The channel pointer: `channels/<channel>.json`, signed by a signing key (`<channel>.sig`).
//! It names the version a channel offers, where its manifest is and the manifest's SHA-256, and
//! to which fraction of the fleet it is offered:
//!
//! ```text
//! {"format":1, "channel":"stable", "board":"x86-64", "version":"0.2.0",
//!  "manifest":"manifests/0.2.0/manifest.json", "manifest_sha256":"…",
//!  "rollout_permille":250, "serial":7, "created":1767225600, "key_id":"<16 hex>"}
//! ```
//! `serial` rises with every publication of the channel; a box remembers the highest it has
//! seen and refuses a lower one, so an old pointer served again (by an attacker or a stale
//! cache) cannot hold it back on, or send it back to, an old version.

use serde::{Deserialize, Serialize};

use crate::bounded::{MAX_POINTER, MAX_SIGNATURE};
use crate::bounded::{check_format, parse_json};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::keys::{KeyId, SecretKey};
use crate::manifest::{self, CheckedManifest, Signed, UpdateCheck};
use crate::rollout::{WHOLE_FLEET, in_wave};
use crate::signature::{DetachedSignature, Purpose};
use crate::trust::Trust;
use crate::version::Version;

pub const FORMAT: u32 = 1;
const MAX_PATH: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPointer {
    pub format: u32,
    pub channel: String,
    pub board: String,
    pub version: Version,
    /// Relative to the repository; its signature is beside it (`.json` → `.sig`).
    pub manifest: String,
    pub manifest_sha256: Sha256Digest,
    /// Thousandths of the fleet offered the version, 0 to 1000.
    pub rollout_permille: u16,
    pub serial: u64,
    /// Seconds since 1970, when it was published.
    pub created: u64,
    pub key_id: KeyId,
}

/// What the box checks a pointer against.
#[derive(Clone, Copy, Debug)]
pub struct PointerCheck<'a> {
    /// The channel the box follows.
    pub channel: &'a str,
    pub board: &'a str,
    /// The highest serial of this channel the box has accepted before.
    pub last_serial: Option<u64>,
    /// Seconds since 1970 (key expiry).
    pub now: u64,
}

/// A pointer whose signature, signer, channel, board and serial passed `verify`.
#[derive(Clone, Debug)]
pub struct CheckedPointer {
    pointer: ChannelPointer,
}

impl std::ops::Deref for CheckedPointer {
    type Target = ChannelPointer;

    fn deref(&self) -> &ChannelPointer {
        &self.pointer
    }
}

impl ChannelPointer {
    pub fn parse(bytes: &[u8]) -> Result<ChannelPointer> {
        let what = "the channel pointer";
        let pointer: ChannelPointer = parse_json(bytes, MAX_POINTER, what)?;
        pointer
            .validate()
            .map_err(|reason| Error::malformed(what, reason))?;
        Ok(pointer)
    }

    pub fn validate(&self) -> Result<(), String> {
        check_format(self.format, FORMAT)?;
        check_channel(&self.channel)?;
        manifest::check_board(&self.board)?;
        check_manifest_path(&self.manifest)?;
        if self.rollout_permille > WHOLE_FLEET {
            return Err(format!(
                "rollout_permille {} is more than the whole fleet ({WHOLE_FLEET})",
                self.rollout_permille
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn sign(mut self, key: &SecretKey) -> Result<Signed> {
        self.key_id = key.id();
        self.validate()
            .map_err(|reason| Error::malformed("the channel pointer to sign", reason))?;
        let bytes = self.to_json();
        let signature = DetachedSignature::sign(key, Purpose::ChannelPointer, &bytes)?;
        Ok(Signed { bytes, signature })
    }

    /// Where the manifest's signature is.
    pub fn manifest_signature(&self) -> String {
        // Validated pointers name a `.json` file.
        crate::layout::signature_for(&self.manifest).unwrap_or_default()
    }
}

/// Checks a pointer for the box: the signature first, then signer, channel, board and serial.
pub fn verify(
    bytes: &[u8],
    signature: &[u8],
    trust: &Trust,
    check: &PointerCheck,
) -> Result<CheckedPointer> {
    crate::bounded::check(signature, MAX_SIGNATURE, "the channel pointer's signature")?;
    crate::bounded::check(bytes, MAX_POINTER, "the channel pointer")?;
    let signature = DetachedSignature::parse(signature, "the channel pointer")?;
    let signer = trust.verify(Purpose::ChannelPointer, bytes, &signature, check.now)?;
    let pointer = ChannelPointer::parse(bytes)?;
    if pointer.key_id != signer {
        return Err(Error::SignerMismatch {
            what: "the channel pointer".into(),
            inside: pointer.key_id,
            signer,
        });
    }
    if pointer.channel != check.channel {
        return Err(Error::WrongChannel {
            expected: check.channel.to_owned(),
            offered: pointer.channel,
        });
    }
    if pointer.board != check.board {
        return Err(Error::WrongBoard {
            running: check.board.to_owned(),
            offered: pointer.board,
        });
    }
    if let Some(last) = check.last_serial.filter(|&last| pointer.serial < last) {
        return Err(Error::PointerReplayed {
            channel: pointer.channel,
            last,
            offered: pointer.serial,
        });
    }
    Ok(CheckedPointer { pointer })
}

impl CheckedPointer {
    /// Whether the box with this identity is in the pointer's rollout wave.
    pub fn in_wave(&self, identity: &[u8]) -> bool {
        in_wave(
            identity,
            self.pointer.version.as_str(),
            self.pointer.rollout_permille,
        )
    }

    /// Checks the manifest the pointer names: its SHA-256 first (the pointer's signature
    /// vouches for exactly those bytes), then the manifest's own signature and rules, then that
    /// it is the version the pointer offers.
    pub fn verify_manifest(
        &self,
        bytes: &[u8],
        signature: &[u8],
        trust: &Trust,
        check: &UpdateCheck,
    ) -> Result<CheckedManifest> {
        let found = Sha256Digest::of(bytes);
        if found != self.pointer.manifest_sha256 {
            return Err(Error::ManifestMismatch {
                expected: self.pointer.manifest_sha256,
                found,
            });
        }
        let manifest = manifest::verify(bytes, signature, trust, check)?;
        if manifest.version != self.pointer.version {
            return Err(Error::VersionMismatch {
                pointer: self.pointer.version.to_string(),
                manifest: manifest.version.to_string(),
            });
        }
        Ok(manifest)
    }
}

/// The rule the box's update settings follow too (board_support::update_config), so a
/// channel the image names is one a pointer can carry.
pub fn check_channel(channel: &str) -> Result<(), String> {
    board_support::update_config::check_channel(channel)
}

/// A path inside the repository: relative, no `.` or `..` parts, plain names, a `.json` file.
fn check_manifest_path(path: &str) -> Result<(), String> {
    let parts_ok = path.split('/').all(|part| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    if path.len() > MAX_PATH || !parts_ok || !path.ends_with(".json") {
        return Err(format!(
            "manifest {path:?} must be a relative path to a .json file in the repository"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::KeyKind;

    pub(crate) fn sample() -> ChannelPointer {
        ChannelPointer {
            format: FORMAT,
            channel: "stable".into(),
            board: "x86-64".into(),
            version: Version::parse("0.2.0").unwrap(),
            manifest: "manifests/0.2.0/manifest.json".into(),
            manifest_sha256: Sha256Digest([7; 32]),
            rollout_permille: 250,
            serial: 7,
            created: 1_767_225_600,
            key_id: SecretKey::from_seed(KeyKind::Signing, &[1; 32]).id(),
        }
    }

    #[test]
    fn a_sample_round_trips() {
        let pointer = sample();
        assert_eq!(ChannelPointer::parse(&pointer.to_json()).unwrap(), pointer);
        assert_eq!(pointer.manifest_signature(), "manifests/0.2.0/manifest.sig");
    }

    #[test]
    fn structural_faults_are_named() {
        type Fault = (&'static str, Box<dyn Fn(&mut ChannelPointer)>);
        let faults: Vec<Fault> = vec![
            ("format", Box::new(|p| p.format = 0)),
            ("channel", Box::new(|p| p.channel = "Stable".into())),
            ("channel", Box::new(|p| p.channel = "-beta".into())),
            ("board", Box::new(|p| p.board = String::new())),
            (
                "relative path",
                Box::new(|p| p.manifest = "/etc/manifest.json".into()),
            ),
            (
                "relative path",
                Box::new(|p| p.manifest = "manifests/../../x.json".into()),
            ),
            (
                "relative path",
                Box::new(|p| p.manifest = "manifests/0.2.0/manifest.sig".into()),
            ),
            ("whole fleet", Box::new(|p| p.rollout_permille = 1001)),
        ];
        for (expected, fault) in faults {
            let mut pointer = sample();
            fault(&mut pointer);
            let err = ChannelPointer::parse(&pointer.to_json()).unwrap_err();
            assert!(
                matches!(err, Error::Malformed { .. }) && err.to_string().contains(expected),
                "{expected}: {err}"
            );
        }
    }
}
