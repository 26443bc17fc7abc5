//! One check of the repository, in the order docs/updates.md gives: the newest key list, the
//! channel pointer (signature, signer, channel, board, not a replay), the rollout wave, then
//! the manifest the pointer names (its hash, signature, board and version rules). Nothing is
//! downloaded beyond these documents and nothing is written but the state and the key list.

use std::path::Path;

use carapace_update::{
    CheckedManifest, Offer, PointerCheck, SignedKeyList, Trust, UpdateCheck, Version, pointer,
};

use crate::error::{Error, Result};
use crate::repository::{Fetched, Repository};

/// The key list in force, kept on /data once the repository served a newer one than the
/// image's.
pub const KEPT_KEY_LIST: &str = "keys.json";

pub enum Outcome {
    /// The channel offers what the box runs (or older, and the owner did not force it).
    UpToDate {
        offered: Version,
    },
    /// A newer version, but this box is not in its rollout wave yet.
    NotInWave {
        offered: Version,
        permille: u16,
    },
    Found(Box<CheckedManifest>),
}

pub struct CheckInput<'a> {
    pub channel: &'a str,
    pub board: &'a str,
    pub running: &'a Version,
    /// What this box draws its rollout wave from.
    pub wave_id: &'a [u8],
    /// The owner asked for this version even if it is older or the same, or outside the wave.
    pub force: bool,
    pub now: u64,
}

/// What a check found, and what the caller keeps in its state.
pub struct Checked {
    pub outcome: Outcome,
    /// The channel pointer's serial, the lowest the box accepts from now on.
    pub serial: u64,
    /// The serial of a newer key list the repository served, now in force.
    pub key_list_taken: Option<u64>,
}

pub async fn check(
    repo: &Repository,
    trust: &mut Trust,
    last_serial: Option<u64>,
    state_dir: &Path,
    input: &CheckInput<'_>,
) -> Result<Checked> {
    let mut key_list_taken = None;
    if let Fetched::Found(bytes) = repo
        .optional_document(carapace_update::layout::KEY_LIST)
        .await?
    {
        let list = SignedKeyList::parse(&bytes)?;
        if let Offer::Replaced { .. } = trust.offer(&list)? {
            let path = state_dir.join(KEPT_KEY_LIST);
            board_support::atomic_file::write(&path, list.to_file_text().as_bytes(), 0o600)
                .map_err(Error::io("write", path))?;
            key_list_taken = Some(list.serial());
        }
    }

    let pointer_path = carapace_update::layout::channel(input.channel);
    let pointer_bytes = repo.document(&pointer_path).await?;
    let signature_path = carapace_update::layout::signature_for(&pointer_path)
        .ok_or_else(|| Error::Config(format!("channel {} has no signature path", input.channel)))?;
    let pointer_signature = repo.document(&signature_path).await?;
    let pointer = pointer::verify(
        &pointer_bytes,
        &pointer_signature,
        trust,
        &PointerCheck {
            channel: input.channel,
            board: input.board,
            last_serial,
            now: input.now,
        },
    )?;
    let checked = |outcome| Checked {
        outcome,
        serial: pointer.serial,
        key_list_taken,
    };
    if &pointer.version <= input.running && !input.force {
        return Ok(checked(Outcome::UpToDate {
            offered: pointer.version.clone(),
        }));
    }
    if !input.force && !pointer.in_wave(input.wave_id) {
        return Ok(checked(Outcome::NotInWave {
            offered: pointer.version.clone(),
            permille: pointer.rollout_permille,
        }));
    }
    let manifest_bytes = repo.document(&pointer.manifest).await?;
    let manifest_signature = repo.document(&pointer.manifest_signature()).await?;
    let manifest = pointer.verify_manifest(
        &manifest_bytes,
        &manifest_signature,
        trust,
        &UpdateCheck {
            board: input.board,
            running: input.running,
            now: input.now,
            force: input.force,
        },
    )?;
    Ok(checked(Outcome::Found(Box::new(manifest))))
}

/// The image's trust, then the list kept on /data offered to it (checked against the image's
/// root key every time it is read: a file on /data is not verified by dm-verity).
pub fn load_trust(state_dir: &Path) -> Result<Trust> {
    let mut trust = Trust::load(
        Path::new(carapace_update::layout::IMAGE_ROOT_KEY),
        Path::new(carapace_update::layout::IMAGE_KEY_LIST),
    )?;
    let kept = state_dir.join(KEPT_KEY_LIST);
    if let Ok(bytes) = std::fs::read(&kept) {
        match SignedKeyList::parse(&bytes).and_then(|list| trust.offer(&list)) {
            Ok(_) => {}
            Err(err) => eprintln!(
                "update: the kept key list {} is not used: {err}",
                kept.display()
            ),
        }
    }
    Ok(trust)
}
