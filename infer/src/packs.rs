//! Model packs on the box: signed folders of models beside the pinned ones (carapace-models'
//! pack.rs). At start the engine reads each pack's manifest and checks its signature with the
//! image's update keys; before each load it hashes the files again (engine.rs), so a pack
//! that was changed after the engine started is refused, not run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carapace_models::verify_pack_manifest;
use carapace_update::Trust;

use crate::engine::{Capability, Engine};
use crate::error::{Error, Result};

/// Seconds since 1970 for the key list's expiry dates (0 before the clock is set: no key has
/// expired yet then, and the signature still has to hold).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The image's update keys (the root public key and the key list it signed), which packs
/// are checked with.
pub fn load_trust(root_key: &Path, key_list: &Path) -> Result<Trust> {
    Trust::load(root_key, key_list).map_err(|error| Error::UpdateKeys {
        reason: format!(
            "{error} (packs are checked with the image's update keys: does its recipe have \
             [update]?)"
        ),
    })
}

impl Engine {
    /// Offers the model of every pack folder in `dirs` whose signature holds with the keys
    /// `trust` loads (only once a pack is found: an image without packs needs no keys); a
    /// missing folder holds no packs. Returns one line per pack: what it added, or why not.
    pub fn add_packs(
        &mut self,
        dirs: &[PathBuf],
        trust: impl FnOnce() -> Result<Trust>,
    ) -> Vec<String> {
        let mut packs: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            let Ok(listing) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut found: Vec<PathBuf> = listing
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.is_dir())
                .collect();
            found.sort();
            packs.extend(found);
        }
        if packs.is_empty() {
            return Vec::new();
        }
        let trust = trust().map(Arc::new).map_err(|error| error.to_string());
        packs
            .iter()
            .map(|pack| match self.add_pack(pack, &trust) {
                Ok(line) => line,
                Err(error) => format!("{error}; it was left out"),
            })
            .collect()
    }

    fn add_pack(
        &mut self,
        dir: &Path,
        trust: &std::result::Result<Arc<Trust>, String>,
    ) -> Result<String> {
        let refused = |reason: String| Error::PackRefused {
            dir: dir.to_path_buf(),
            reason,
        };
        let trust = trust.as_ref().map_err(|why| refused(why.clone()))?;
        let pack = verify_pack_manifest(dir, trust, now())?;
        let manifest = &pack.manifest;
        let capability: Capability =
            serde_json::from_value(serde_json::Value::String(manifest.capability.clone()))
                .map_err(|_| {
                    let known: Vec<String> = Capability::ALL
                        .iter()
                        .filter_map(|c| serde_json::to_value(c).ok())
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect();
                    refused(format!(
                        "capability {:?} is not one this engine has ({})",
                        manifest.capability,
                        known.join(", ")
                    ))
                })?;
        self.add_pack_model(
            &manifest.name,
            capability,
            dir.to_path_buf(),
            Arc::clone(trust),
        )?;
        Ok(format!(
            "model pack {} {} ({}, signed by key {}) from {}",
            manifest.name,
            manifest.version,
            manifest.capability,
            pack.signed_by,
            dir.display()
        ))
    }
}
