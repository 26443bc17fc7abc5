//! Where things are: in an update repository (what `carapace publish` writes and the box
//! fetches, relative to the board's base URL), in a bundle directory, and in the image.
//!
//! ```text
//! <repository>/                    one per board, e.g. https://updates.example.com/x86-64/
//!   keys.json                      the newest key list, signed by the root key (optional)
//!   chunks/<sha256>                every chunk of every published version, named by content,
//!                                  so versions share the chunks they have in common
//!   manifests/<version>/manifest.json, manifest.sig
//!   channels/<channel>.json, <channel>.sig      the signed channel pointers
//! out/<recipe>/bundle/             what `carapace bundle` writes
//!   manifest.json, manifest.sig, chunks/<sha256>
//! ```
//! The box fetches keys.json first (a newer list may name the key that signed the pointer),
//! then the pointer, the manifest it names, and the chunks it lacks.

use crate::digest::Sha256Digest;
use crate::version::Version;

pub const KEY_LIST: &str = "keys.json";
pub const CHUNKS_DIR: &str = "chunks";
pub const CHANNELS_DIR: &str = "channels";
pub const MANIFESTS_DIR: &str = "manifests";

pub const BUNDLE_MANIFEST: &str = "manifest.json";
pub const BUNDLE_SIGNATURE: &str = "manifest.sig";

/// The root public key and key list the image carries, on its verified root.
pub const IMAGE_ROOT_KEY: &str = "/etc/carapace/update-root.pub";
pub const IMAGE_KEY_LIST: &str = "/etc/carapace/update-keys.json";

pub fn chunk(sha256: &Sha256Digest) -> String {
    format!("{CHUNKS_DIR}/{sha256}")
}

/// Version text is digits, letters, '.' and '-' only, so it is a safe path component.
pub fn manifest(version: &Version) -> String {
    format!("{MANIFESTS_DIR}/{version}/{BUNDLE_MANIFEST}")
}

pub fn channel(name: &str) -> String {
    format!("{CHANNELS_DIR}/{name}.json")
}

/// `x.json` → `x.sig`: every signed JSON file has its signature beside it.
pub fn signature_for(json_path: &str) -> Option<String> {
    json_path
        .strip_suffix(".json")
        .map(|stem| format!("{stem}.sig"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let version = Version::parse("1.2.0-rc.1").unwrap();
        assert_eq!(manifest(&version), "manifests/1.2.0-rc.1/manifest.json");
        assert_eq!(
            signature_for(&manifest(&version)).unwrap(),
            "manifests/1.2.0-rc.1/manifest.sig"
        );
        assert_eq!(channel("beta"), "channels/beta.json");
        assert_eq!(signature_for("channels/beta"), None);
        let digest = Sha256Digest::of(b"");
        assert_eq!(chunk(&digest), format!("chunks/{}", digest.to_hex()));
    }
}
