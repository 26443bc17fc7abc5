//! Model packs on the box: signed folders of models beside the pinned ones (carapace-models'
//! pack.rs), those the image carries and those the owner adds to /data (the pack store). At
//! start the engine reads each pack's manifest and checks its signature with the image's
//! update keys; before each load it hashes the files again (engine.rs), so a pack that was
//! changed after the engine started is refused, not run.
//!
//! ```text
//! /data/infer/packs/                 the pack store (serve --pack-store), the engine's own
//!     tiny-smolvlm-1.0.0/            <name>-<version>, as the pack was signed
//!     .incoming-<n>/                 a pack arriving (POST /v1/packs), not yet checked
//!     .removed-<n>/                  a pack on its way out
//! ```
//! A pack arrives as a tar, unpacked as it streams in into `.incoming-<n>`, checked whole
//! (signature, every file's sha256, nothing extra), then renamed into place: a power cut
//! leaves either the old set of packs or the new one, and the dot folders are removed at the
//! next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use carapace_models::{PackManifest, verify_pack, verify_pack_manifest};
use carapace_update::{KeyId, Trust};

use crate::engine::{Capability, Engine, ModelSource};
use crate::error::{Error, Result};

/// What a pack may not take of the store's file system: the box's own state (the agent's
/// store, logs) must keep room to grow.
pub const KEEP_FREE_BYTES: u64 = 256 * 1024 * 1024;
/// Folders in the store that are not (yet, or any more) packs start with this.
const NOT_A_PACK: char = '.';

/// Where the packs the owner adds are kept, and the keys they are checked with.
pub(crate) struct PackStore {
    dir: PathBuf,
    trust: std::result::Result<Arc<Trust>, String>,
    /// Taken while a pack goes into place or out of it, so two never race for a name.
    changing: std::sync::Mutex<()>,
}

/// A pack the store took.
#[derive(Debug, Clone)]
pub struct AddedPack {
    pub id: String,
    pub version: String,
    pub capability: Capability,
    pub signed_by: KeyId,
    /// The version it replaced, if the store had the model already.
    pub replaced: Option<String>,
}

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
        &self,
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
            .map(
                |pack| match self.add_pack(pack, &trust, ModelSource::ImagePack) {
                    Ok(line) => line,
                    Err(error) => format!("{error}; it was left out"),
                },
            )
            .collect()
    }

    fn add_pack(
        &self,
        dir: &Path,
        trust: &std::result::Result<Arc<Trust>, String>,
        source: ModelSource,
    ) -> Result<String> {
        let refused = |reason: String| Error::PackRefused {
            dir: dir.to_path_buf(),
            reason,
        };
        let trust = trust.as_ref().map_err(|why| refused(why.clone()))?;
        let pack = verify_pack_manifest(dir, trust, now())?;
        let manifest = &pack.manifest;
        let capability = capability_of(manifest, dir)?;
        self.add_pack_model(
            manifest,
            capability,
            dir.to_path_buf(),
            source,
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

/// The capability a pack declares, if this engine has it.
fn capability_of(manifest: &PackManifest, dir: &Path) -> Result<Capability> {
    let found = Capability::ALL
        .into_iter()
        .find(|capability| capability.name() == manifest.capability);
    found.ok_or_else(|| {
        let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
        Error::PackRefused {
            dir: dir.to_path_buf(),
            reason: format!(
                "capability {:?} is not one this engine has ({})",
                manifest.capability,
                known.join(", ")
            ),
        }
    })
}

/// A refusal of an arriving pack says what was wrong with the pack, not the name of the
/// folder it was unpacked into for the check (gone by the time the owner reads it).
fn without_incoming_folder(error: Error) -> Error {
    match error {
        Error::Models(carapace_models::Error::Pack { reason, .. })
        | Error::PackRefused { reason, .. } => Error::PackUpload { reason },
        other => other,
    }
}

impl Engine {
    /// Keeps the packs the owner adds in `dir` (created if missing), checked with the keys
    /// `trust` loads, and offers the packs already there. Leftovers of an add or a removal a
    /// power cut interrupted are removed first. Returns one line per pack, as `add_packs`.
    pub fn open_pack_store(
        &mut self,
        dir: PathBuf,
        trust: impl FnOnce() -> Result<Trust>,
    ) -> Result<Vec<String>> {
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        let mut packs = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
            let path = entry.map_err(Error::io("listing", &dir))?.path();
            let leftover = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(NOT_A_PACK));
            if leftover {
                remove_any(&path)?;
            } else if path.is_dir() {
                packs.push(path);
            }
        }
        packs.sort();
        let trust = trust().map(Arc::new).map_err(|error| error.to_string());
        let lines = packs
            .iter()
            .map(
                |pack| match self.add_pack(pack, &trust, ModelSource::AddedPack) {
                    Ok(line) => line,
                    Err(error) => format!("{error}; it was left out"),
                },
            )
            .collect();
        self.pack_store = Some(PackStore {
            dir,
            trust,
            changing: std::sync::Mutex::new(()),
        });
        Ok(lines)
    }

    /// Takes a pack tar read from `from` into the store and offers its model at once: the
    /// files are unpacked as they arrive (at most what leaves [`KEEP_FREE_BYTES`] free), the
    /// whole pack is checked, and only then renamed into place, replacing an older version
    /// the owner added. Anything refused leaves nothing behind. Blocks: call it off the
    /// async runtime.
    pub fn add_pack_tar(&self, from: impl std::io::Read) -> Result<AddedPack> {
        let store = self.pack_store.as_ref().ok_or(Error::NoPackStore)?;
        let trust = store
            .trust
            .as_ref()
            .map_err(|why| Error::PackUpload {
                reason: format!("{why}; without the image's update keys no pack can be checked"),
            })?
            .clone();
        let room = free_bytes(&store.dir)?.saturating_sub(KEEP_FREE_BYTES);
        let incoming = store.dir.join(unique_name("incoming"));
        std::fs::create_dir(&incoming).map_err(Error::io("creating", &incoming))?;
        let taken = (|| {
            carapace_models::unpack_pack_tar(from, &incoming, room)?;
            let pack = verify_pack(&incoming, &trust, now())?;
            let capability = capability_of(&pack.manifest, &incoming)?;
            self.put_in_place(store, &incoming, &pack.manifest, capability, &trust)
                .map(|replaced| AddedPack {
                    id: pack.manifest.name.clone(),
                    version: pack.manifest.version.clone(),
                    capability,
                    signed_by: pack.signed_by,
                    replaced,
                })
        })();
        if taken.is_err() {
            let _ = std::fs::remove_dir_all(&incoming);
        }
        taken.map_err(without_incoming_folder)
    }

    /// Renames the checked pack in `incoming` to its own name and offers it; returns the
    /// version it replaced.
    fn put_in_place(
        &self,
        store: &PackStore,
        incoming: &Path,
        manifest: &PackManifest,
        capability: Capability,
        trust: &Arc<Trust>,
    ) -> Result<Option<String>> {
        let _changing = store
            .changing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = self.status();
        let existing = status.iter().find(|model| model.id == manifest.name);
        if let Some(model) = existing.filter(|model| model.source != ModelSource::AddedPack) {
            return Err(Error::PackUpload {
                reason: format!(
                    "the image has a model named {} already; a pack may not replace it (give \
                     the pack another name)",
                    model.id
                ),
            });
        }
        let replaced = existing.and_then(|model| model.version.clone());
        let target = store.dir.join(manifest.dir_name());
        // The same version again: the one there goes out of the way first.
        let displaced = store.dir.join(unique_name("removed"));
        let same_version = target.exists();
        if same_version {
            std::fs::rename(&target, &displaced).map_err(Error::io("moving aside", &target))?;
        }
        std::fs::rename(incoming, &target).map_err(Error::io("renaming into place", &target))?;
        sync_dir(&store.dir)?;
        let old = self.add_pack_model(
            manifest,
            capability,
            target.clone(),
            ModelSource::AddedPack,
            Arc::clone(trust),
        )?;
        if same_version {
            remove_any(&displaced)?;
        }
        if let Some(old) = old.filter(|old| *old != target) {
            remove_any(&old)?;
        }
        Ok(replaced)
    }

    /// Removes model `id`, a pack the owner added, from the engine and the store; returns its
    /// version. The image's models are refused.
    pub fn remove_added_pack(&self, id: &str) -> Result<String> {
        let store = self.pack_store.as_ref().ok_or(Error::NoPackStore)?;
        let _changing = store
            .changing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let model = self
            .status()
            .into_iter()
            .find(|model| model.id == id)
            .ok_or_else(|| Error::UnknownModel { model: id.into() })?;
        if model.source != ModelSource::AddedPack {
            return Err(Error::NotRemovable { model: id.into() });
        }
        let slot = self
            .remove_model(id)
            .ok_or_else(|| Error::UnknownModel { model: id.into() })?;
        let dir = slot.dir.clone();
        // Its loaded model, if any, goes with the slot.
        drop(slot);
        crate::malloc::return_freed_memory();
        let removed = store.dir.join(unique_name("removed"));
        std::fs::rename(&dir, &removed).map_err(Error::io("moving aside", &dir))?;
        sync_dir(&store.dir)?;
        remove_any(&removed)?;
        Ok(model.version.unwrap_or_default())
    }
}

/// A name in the store no other folder has: `.<what>-<pid>-<n>`.
fn unique_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{NOT_A_PACK}{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn remove_any(path: &Path) -> Result<()> {
    let removed = match path.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    };
    removed.map_err(Error::io("removing", path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io("syncing", dir))
}

/// The bytes free to an unprivileged writer on the file system that holds `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    let stats = rustix::fs::statvfs(dir).map_err(|errno| Error::Io {
        action: "measuring the free space of",
        path: dir.to_path_buf(),
        source: errno.into(),
    })?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}
