//! Publishing a bundle into a repository (`carapace publish`): a directory any static web
//! server, CDN or object store can serve as it is (`layout` draws it). Chunks (of files and of
//! patches alike) are copied by content, so versions share what they have in common; the
//! manifest goes under its version, which never changes once published; the channel pointer is signed and written last, so a
//! box never sees a pointer to files that are not there yet.
//!
//! Everything is checked before the first file is written: the bundle's chunks against its
//! manifest, the manifest's and the new pointer's signers against the key list (the one given,
//! else the repository's keys.json), the board the repository holds, the channel's current
//! version and the version's manifest if it was published before.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::assemble::read_download;
use crate::bounded::{MAX_KEY_LIST, MAX_MANIFEST, MAX_POINTER, MAX_SIGNATURE};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::key_list::{KeyList, SignedKeyList};
use crate::keys::SecretKey;
use crate::layout::{self, BUNDLE_MANIFEST, BUNDLE_SIGNATURE, CHANNELS_DIR, CHUNKS_DIR, KEY_LIST};
use crate::manifest::Manifest;
use crate::pointer::{self, ChannelPointer};
use crate::signature::{DetachedSignature, Purpose};

pub struct PublishRequest<'a> {
    /// A bundle directory (`out/<recipe>/bundle`).
    pub bundle: &'a Path,
    pub repository: &'a Path,
    pub channel: &'a str,
    pub rollout_permille: u16,
    /// Signs the channel pointer.
    pub key: &'a SecretKey,
    /// A key list to publish as keys.json (it must not be older than the one there).
    pub key_list: Option<&'a SignedKeyList>,
    /// Seconds since 1970: the pointer's `created`, and the time key expiry is checked at.
    pub now: u64,
}

#[derive(Debug)]
pub struct Published {
    pub pointer: ChannelPointer,
    pub chunks_copied: usize,
    pub chunks_present: usize,
    pub bytes_copied: u64,
    /// The serial of the key list the signers were checked against, if there was one.
    pub checked_against: Option<u64>,
}

pub fn publish(request: &PublishRequest) -> Result<Published> {
    let repo = request.repository;
    pointer::check_channel(request.channel)
        .map_err(|reason| Error::malformed("the channel name", reason))?;

    // The bundle: manifest, signature and every chunk whole.
    let manifest_path = request.bundle.join(BUNDLE_MANIFEST);
    let manifest_bytes = crate::bounded::read_file(&manifest_path, MAX_MANIFEST, "manifest")?;
    let signature_path = request.bundle.join(BUNDLE_SIGNATURE);
    let signature_bytes =
        crate::bounded::read_file(&signature_path, MAX_SIGNATURE, "signature file")?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    let signature = DetachedSignature::parse(&signature_bytes, "the manifest")?;
    if signature.key_id != manifest.key_id {
        return Err(Error::SignerMismatch {
            what: "the manifest".into(),
            inside: manifest.key_id,
            signer: signature.key_id,
        });
    }
    let bundle_chunks = request.bundle.join(CHUNKS_DIR);
    let mut distinct = Vec::new();
    let mut seen = HashSet::new();
    let patches = manifest.patches.iter().map(|patch| patch.as_artifact());
    for artifact in manifest.artifacts().into_iter().chain(patches) {
        for chunk in artifact.chunks {
            if seen.insert(chunk.sha256) {
                read_download(&bundle_chunks, chunk)?;
                distinct.push(*chunk);
            }
        }
    }

    // The signers, against the key list boxes will hold.
    let repo_list = read_repo_key_list(repo)?;
    if let (Some(new), Some(old)) = (request.key_list, &repo_list)
        && (new.serial() < old.serial() || (new.serial() == old.serial() && new != old))
    {
        return Err(Error::KeyListNotNewer {
            place: repo.join(KEY_LIST).display().to_string(),
            current: old.serial(),
            offered: new.serial(),
        });
    }
    let list: Option<&KeyList> = request
        .key_list
        .or(repo_list.as_ref())
        .map(SignedKeyList::unverified);
    match list {
        Some(list) => {
            list.verify(Purpose::Manifest, &manifest_bytes, &signature, request.now)?;
        }
        // Without a list, a manifest signed by the pointer's own key can still be checked.
        None if signature.key_id == request.key.id() => {
            signature.verify(&request.key.public(), Purpose::Manifest, &manifest_bytes)?;
        }
        None => {}
    }

    // The repository: one board, a channel that only moves forward, versions that never change.
    let channels = read_channels(repo)?;
    if let Some(other) = channels.iter().find(|p| p.board != manifest.board) {
        return Err(Error::RepositoryBoard {
            repo: repo.to_owned(),
            holds: other.board.clone(),
            offered: manifest.board.clone(),
        });
    }
    let current = channels.iter().find(|p| p.channel == request.channel);
    if let Some(current) = current.filter(|c| c.version > manifest.version) {
        return Err(Error::ChannelDowngrade {
            channel: request.channel.to_owned(),
            current: current.version.to_string(),
            offered: manifest.version.to_string(),
        });
    }
    let manifest_rel = layout::manifest(&manifest.version);
    let manifest_at = repo.join(&manifest_rel);
    match std::fs::read(&manifest_at) {
        Ok(existing) if existing != manifest_bytes => {
            return Err(Error::VersionTaken {
                version: manifest.version.to_string(),
                path: manifest_at,
            });
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io("read", &manifest_at)(err)),
    }
    let pointer = ChannelPointer {
        format: pointer::FORMAT,
        channel: request.channel.to_owned(),
        board: manifest.board.clone(),
        version: manifest.version.clone(),
        manifest: manifest_rel.clone(),
        manifest_sha256: Sha256Digest::of(&manifest_bytes),
        rollout_permille: request.rollout_permille,
        serial: current.map_or(1, |c| c.serial + 1),
        created: request.now,
        key_id: request.key.id(),
    };
    let signed_pointer = pointer.clone().sign(request.key)?;
    if let Some(list) = list {
        list.verify(
            Purpose::ChannelPointer,
            &signed_pointer.bytes,
            &signed_pointer.signature,
            request.now,
        )?;
    }

    // Writing: chunks, manifest, key list, and the pointer last.
    let mut published = Published {
        pointer,
        chunks_copied: 0,
        chunks_present: 0,
        bytes_copied: 0,
        checked_against: list.map(|l| l.serial),
    };
    let repo_chunks = repo.join(CHUNKS_DIR);
    create_dir(&repo_chunks)?;
    for chunk in &distinct {
        // A chunk file already there is kept only if it is whole (a torn copy is replaced).
        if read_download(&repo_chunks, chunk).is_ok() {
            published.chunks_present += 1;
            continue;
        }
        let bytes = read_download(&bundle_chunks, chunk)?;
        write(&repo.join(layout::chunk(&chunk.sha256)), &bytes)?;
        published.chunks_copied += 1;
        published.bytes_copied += bytes.len() as u64;
    }
    if let Some(parent) = manifest_at.parent() {
        create_dir(parent)?;
    }
    write(&manifest_at, &manifest_bytes)?;
    let manifest_sig = layout::signature_for(&manifest_rel).unwrap_or_default();
    write(&repo.join(manifest_sig), &signature_bytes)?;
    if let Some(list) = request.key_list {
        write(&repo.join(KEY_LIST), list.to_file_text().as_bytes())?;
    }
    let pointer_rel = layout::channel(request.channel);
    create_dir(&repo.join(CHANNELS_DIR))?;
    write(&repo.join(&pointer_rel), &signed_pointer.bytes)?;
    let pointer_sig = layout::signature_for(&pointer_rel).unwrap_or_default();
    write(
        &repo.join(pointer_sig),
        signed_pointer.signature.to_file_text().as_bytes(),
    )?;
    Ok(published)
}

fn read_repo_key_list(repo: &Path) -> Result<Option<SignedKeyList>> {
    let path = repo.join(KEY_LIST);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = crate::bounded::read_file(&path, MAX_KEY_LIST, "key list")?;
    SignedKeyList::parse(&bytes).map(Some)
}

/// The channel pointers already in the repository.
fn read_channels(repo: &Path) -> Result<Vec<ChannelPointer>> {
    let dir = repo.join(CHANNELS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("list", &dir)(err)),
    };
    let mut pointers = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = crate::bounded::read_file(&path, MAX_POINTER, "channel pointer")?;
        let pointer = ChannelPointer::parse(&bytes).map_err(|err| {
            Error::malformed(
                path.display().to_string(),
                format!("{err}; remove it to start that channel afresh"),
            )
        })?;
        pointers.push(pointer);
    }
    Ok(pointers)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    board_support::atomic_file::write(path, bytes, 0o644).map_err(Error::io("write", path))
}
