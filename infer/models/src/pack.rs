//! Model packs: models the owner adds beside the ones the image pins, as a folder that says
//! what it holds and is signed with the update signing key, so a model on /data cannot be
//! swapped or changed behind the box's back. `carapace models add` makes one from a model
//! folder; the image builder and the engine check one before they use a byte of it.
//!
//! ```text
//! whisper-base-en-1.0.0/          <name>-<version>
//!     pack.json                   {"format":1,"name":…,"version":…,"capability":…,
//!                                  "runs_on":"candle","files":[{"path":…,"size":…,"sha256":…}]}
//!     pack.sig                    {"key_id":…,"ed25519":…}: a signing key's signature of
//!                                  pack.json's bytes (carapace_update::Purpose::ModelPack)
//!     config.json model.safetensors tokenizer.json
//! ```
//! Every file of the folder is listed with its size and sha256, and nothing else may be in it:
//! a pack is exactly what was signed.
//!
//! A speech pack's Piper voice (one `.onnx` beside its `.onnx.json`) goes into the pack split
//! at its decoder, as the fetch of a pinned voice splits it (piper_split.rs): the same numbers,
//! decoded on all the box's cores. A voice the split cannot lay out goes in whole, and the
//! engine runs it whole; `MadePack::voice` says which, and why.

use std::path::{Path, PathBuf};

use carapace_update::{DetachedSignature, KeyId, Purpose, SecretKey, Trust};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digest::sha256_file;
use crate::error::{Error, Result};
use crate::lock::RunsOn;
use crate::piper_split::{DECODER, FRONT};

pub const PACK_MANIFEST: &str = "pack.json";
pub const PACK_SIGNATURE: &str = "pack.sig";
const FORMAT: u32 = 1;
/// A manifest lists a model's few files; more than this is not a manifest.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
pub(crate) const MAX_FILES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    pub format: u32,
    /// The model's id in the engine's API; lower-case letters, digits, '.', '-'.
    pub name: String,
    pub version: String,
    /// What the model does, as the engine's API names it (`embeddings`, `transcription`,
    /// `voice_activity`, ...): it decides how the engine loads the files. The engine checks it.
    pub capability: String,
    pub runs_on: RunsOn,
    pub files: Vec<PackFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// A plain file name in the pack's folder.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A pack whose signature and files were checked.
#[derive(Debug, Clone)]
pub struct VerifiedPack {
    pub dir: PathBuf,
    pub manifest: PackManifest,
    pub signed_by: KeyId,
}

impl PackManifest {
    /// The folder name a pack goes by: `<name>-<version>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} (this build reads format {FORMAT})",
                self.format
            ));
        }
        let id_like = |text: &str| {
            !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !text.starts_with(['.', '-'])
        };
        if !id_like(&self.name) {
            return Err(format!(
                "name {:?}: use 1 to 64 lower-case letters, digits, '.' and '-'",
                self.name
            ));
        }
        if !id_like(&self.version) {
            return Err(format!(
                "version {:?}: use 1 to 64 lower-case letters, digits, '.' and '-'",
                self.version
            ));
        }
        if self.capability.is_empty()
            || !self
                .capability
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(format!("capability {:?} is not a name", self.capability));
        }
        if self.files.is_empty() || self.files.len() > MAX_FILES {
            return Err(format!("it must list 1 to {MAX_FILES} files"));
        }
        for (i, file) in self.files.iter().enumerate() {
            if !plain_file_name(&file.path) {
                return Err(format!(
                    "file {:?} is not a plain file name inside the pack",
                    file.path
                ));
            }
            if self.files[..i].iter().any(|f| f.path == file.path) {
                return Err(format!("file {:?} is listed twice", file.path));
            }
            if file.sha256.len() != 64
                || !file
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "file {:?}: sha256 must be 64 lower-case hex digits",
                    file.path
                ));
            }
        }
        Ok(())
    }
}

/// A name that stays in its folder and is not the pack's own manifest or signature.
pub(crate) fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name != PACK_MANIFEST
        && name != PACK_SIGNATURE
}

/// What `make_pack` packs.
pub struct PackRequest<'a> {
    /// The model's files: every plain file in it goes into the pack.
    pub model_dir: &'a Path,
    pub name: &'a str,
    pub version: &'a str,
    pub capability: &'a str,
    pub runs_on: RunsOn,
    /// A signing key the boxes' key list trusts.
    pub key: &'a SecretKey,
    /// Where the pack's folder is made (it must not exist yet): `out_dir/<name>-<version>`.
    pub out_dir: &'a Path,
}

/// What `make_pack` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadePack {
    /// The pack's folder: `out_dir/<name>-<version>`.
    pub dir: PathBuf,
    /// For a speech pack with one `.onnx` model: how its voice went in.
    pub voice: Option<VoicePacked>,
}

/// How a speech pack's Piper voice went into the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoicePacked {
    /// Split at its decoder into piper_split's FRONT and DECODER, in place of `model`.
    Split { model: String },
    /// As it was, because the split could not lay it out.
    Whole { model: String, reason: String },
}

/// Where a file of the pack comes from.
enum Source {
    Copy(PathBuf),
    Made(Vec<u8>),
}

/// Copies a model folder into a new, signed pack folder. The pack is made under a temporary
/// name and renamed into place, so a pack folder is whole or absent.
pub fn make_pack(request: &PackRequest<'_>) -> Result<MadePack> {
    let invalid = |reason: String| Error::Pack {
        dir: request.model_dir.to_path_buf(),
        reason,
    };
    let mut entries: Vec<(String, Source)> = Vec::new();
    let listing =
        std::fs::read_dir(request.model_dir).map_err(Error::io("listing", request.model_dir))?;
    for entry in listing {
        let entry = entry.map_err(Error::io("listing", request.model_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry
            .file_type()
            .map_err(Error::io("reading", entry.path()))?;
        if !kind.is_file() {
            return Err(invalid(format!(
                "{name} is not a plain file; a pack holds only the model's files"
            )));
        }
        if !plain_file_name(&name) {
            return Err(invalid(format!(
                "{name} cannot go into a pack (the name is the pack's own or not plain)"
            )));
        }
        entries.push((name, Source::Copy(entry.path())));
    }
    let voice = if request.capability == "speech" {
        split_voice(&mut entries)?
    } else {
        None
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut files = Vec::new();
    for (name, source) in &entries {
        let (size, sha256) = match source {
            Source::Copy(path) => (
                std::fs::metadata(path)
                    .map_err(Error::io("reading", path))?
                    .len(),
                sha256_file(path)?,
            ),
            Source::Made(bytes) => (bytes.len() as u64, hex::encode(Sha256::digest(bytes))),
        };
        files.push(PackFile {
            path: name.clone(),
            size,
            sha256,
        });
    }
    let manifest = PackManifest {
        format: FORMAT,
        name: request.name.to_string(),
        version: request.version.to_string(),
        capability: request.capability.to_string(),
        runs_on: request.runs_on,
        files,
    };
    manifest.validate().map_err(invalid)?;
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| invalid(format!("writing the manifest: {error}")))?;
    manifest_bytes.push(b'\n');
    let signature = DetachedSignature::sign(request.key, Purpose::ModelPack, &manifest_bytes)
        .map_err(|error| invalid(format!("signing: {error}")))?;

    let final_dir = request.out_dir.join(manifest.dir_name());
    if final_dir.exists() {
        return Err(invalid(format!(
            "{} exists already; a pack is never overwritten (give a new version)",
            final_dir.display()
        )));
    }
    let scratch = request
        .out_dir
        .join(format!(".{}.partial", manifest.dir_name()));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(Error::io("removing", &scratch))?;
    }
    std::fs::create_dir_all(&scratch).map_err(Error::io("creating", &scratch))?;
    for (name, source) in &entries {
        let to = scratch.join(name);
        match source {
            Source::Copy(path) => {
                std::fs::copy(path, &to).map_err(Error::io("copying", path))?;
            }
            Source::Made(bytes) => std::fs::write(&to, bytes).map_err(Error::io("writing", &to))?,
        }
    }
    write_synced(&scratch.join(PACK_MANIFEST), &manifest_bytes)?;
    write_synced(
        &scratch.join(PACK_SIGNATURE),
        signature.to_file_text().as_bytes(),
    )?;
    // The copies' bytes are on disk before the name that makes them a pack appears.
    for (name, _) in &entries {
        let path = scratch.join(name);
        std::fs::File::open(&path)
            .and_then(|file| file.sync_all())
            .map_err(Error::io("syncing", &path))?;
    }
    std::fs::rename(&scratch, &final_dir).map_err(Error::io("renaming into place", &final_dir))?;
    std::fs::File::open(request.out_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io("syncing", request.out_dir))?;
    Ok(MadePack {
        dir: final_dir,
        voice,
    })
}

/// Puts the split of the folder's one `.onnx` model (a Piper voice) in its place among
/// `entries`, or leaves it whole where the split cannot lay it out; None where the folder does
/// not hold exactly one `.onnx`.
fn split_voice(entries: &mut Vec<(String, Source)>) -> Result<Option<VoicePacked>> {
    let models: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].0.ends_with(".onnx"))
        .collect();
    let [index] = models[..] else {
        return Ok(None);
    };
    let (model, Source::Copy(path)) = &entries[index] else {
        return Ok(None);
    };
    let model = model.clone();
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    match crate::piper_split::split(&bytes) {
        Ok((front, decoder)) => {
            entries.remove(index);
            entries.push((FRONT.to_string(), Source::Made(front)));
            entries.push((DECODER.to_string(), Source::Made(decoder)));
            Ok(Some(VoicePacked::Split { model }))
        }
        Err(reason) => Ok(Some(VoicePacked::Whole { model, reason })),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(Error::io("creating", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", path))
}

/// Checks the pack in `dir`: its manifest signed by a key `trust` holds at `now` (seconds
/// since 1970), well formed, and every file present with the listed size and sha256, with
/// nothing else beside them.
pub fn verify_pack(dir: &Path, trust: &Trust, now: u64) -> Result<VerifiedPack> {
    let pack = verify_pack_manifest(dir, trust, now)?;
    for file in &pack.manifest.files {
        let path = dir.join(&file.path);
        let actual = sha256_file(&path)?;
        if actual != file.sha256 {
            return Err(Error::Pack {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{} has sha256 {actual}, but the signed manifest says {}; it was changed \
                     after signing",
                    file.path, file.sha256
                ),
            });
        }
    }
    Ok(pack)
}

/// What `verify_pack` checks short of hashing the files: the signature, the manifest, and
/// that the folder holds exactly the listed files at their listed sizes. Cheap enough for a
/// start-up scan; hash with `verify_pack` before using the files.
pub fn verify_pack_manifest(dir: &Path, trust: &Trust, now: u64) -> Result<VerifiedPack> {
    let invalid = |reason: String| Error::Pack {
        dir: dir.to_path_buf(),
        reason,
    };
    let manifest_path = dir.join(PACK_MANIFEST);
    let size = std::fs::metadata(&manifest_path)
        .map_err(|error| invalid(format!("no {PACK_MANIFEST} ({error}); is this a pack?")))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        return Err(invalid(format!(
            "{PACK_MANIFEST} is {size} bytes, more than any manifest"
        )));
    }
    let manifest_bytes =
        std::fs::read(&manifest_path).map_err(Error::io("reading", &manifest_path))?;
    let signature_path = dir.join(PACK_SIGNATURE);
    let signature_bytes = std::fs::read(&signature_path)
        .map_err(|error| invalid(format!("no {PACK_SIGNATURE} ({error}): packs are signed")))?;
    let (manifest, signed_by): (PackManifest, _) = trust
        .open_signed(
            Purpose::ModelPack,
            &manifest_bytes,
            &signature_bytes,
            PACK_MANIFEST,
            now,
        )
        .map_err(invalid)?;
    manifest
        .validate()
        .map_err(|reason| invalid(format!("{PACK_MANIFEST}: {reason}")))?;
    let listing = std::fs::read_dir(dir).map_err(Error::io("listing", dir))?;
    for entry in listing {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let listed = name == PACK_MANIFEST
            || name == PACK_SIGNATURE
            || manifest.files.iter().any(|f| f.path == name);
        if !listed {
            return Err(invalid(format!(
                "{name} is in the folder but not in the signed manifest"
            )));
        }
    }
    for file in &manifest.files {
        let path = dir.join(&file.path);
        let actual_size = std::fs::metadata(&path)
            .map_err(|error| invalid(format!("{} is missing ({error})", file.path)))?
            .len();
        if actual_size != file.size {
            return Err(invalid(format!(
                "{} is {actual_size} bytes, but the signed manifest says {}",
                file.path, file.size
            )));
        }
    }
    Ok(VerifiedPack {
        dir: dir.to_path_buf(),
        manifest,
        signed_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapace_update::KeyKind;

    struct Fixture {
        _dir: tempfile::TempDir,
        model: PathBuf,
        out: PathBuf,
        signing: SecretKey,
        trust: Trust,
    }

    fn trust_for(root: &SecretKey, signing: &[&SecretKey]) -> Trust {
        Trust::of_keys(root, signing).unwrap()
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        let out = dir.path().join("packs");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(model.join("config.json"), b"{\"hidden_size\": 4}").unwrap();
        std::fs::write(model.join("model.safetensors"), vec![7u8; 4096]).unwrap();
        let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let trust = trust_for(&root, &[&signing]);
        Fixture {
            _dir: dir,
            model,
            out,
            signing,
            trust,
        }
    }

    fn pack(f: &Fixture, key: &SecretKey) -> Result<PathBuf> {
        pack_as(f, key, "embeddings").map(|made| made.dir)
    }

    fn pack_as(f: &Fixture, key: &SecretKey, capability: &str) -> Result<MadePack> {
        make_pack(&PackRequest {
            model_dir: &f.model,
            name: "tiny-bert",
            version: "1.0.0",
            capability,
            runs_on: RunsOn::Onnxruntime,
            key,
            out_dir: &f.out,
        })
    }

    fn listed(dir: &Path, trust: &Trust) -> Vec<String> {
        let verified = verify_pack(dir, trust, 0).unwrap();
        verified
            .manifest
            .files
            .into_iter()
            .map(|f| f.path)
            .collect()
    }

    #[test]
    fn a_speech_packs_voice_goes_in_split_or_whole_where_the_split_cannot_lay_it_out() {
        let f = fixture();
        std::fs::remove_file(f.model.join("model.safetensors")).unwrap();
        let voice = crate::piper_split::tests::miniature(None);
        std::fs::write(f.model.join("en_US-x-medium.onnx"), &voice).unwrap();
        let made = pack_as(&f, &f.signing, "speech").unwrap();
        let model = "en_US-x-medium.onnx".to_string();
        assert_eq!(
            made.voice,
            Some(VoicePacked::Split {
                model: model.clone()
            })
        );
        assert_eq!(
            listed(&made.dir, &f.trust),
            ["config.json", "voice-decoder.onnx", "voice-front.onnx"]
        );
        let (front, decoder) = crate::piper_split::split(&voice).unwrap();
        assert_eq!(std::fs::read(made.dir.join(FRONT)).unwrap(), front);
        assert_eq!(std::fs::read(made.dir.join(DECODER)).unwrap(), decoder);
        // The owner's folder is left as it was.
        assert_eq!(std::fs::read(f.model.join(&model)).unwrap(), voice);

        // Another capability's .onnx goes in as it is.
        std::fs::remove_dir_all(&made.dir).unwrap();
        let made = pack_as(&f, &f.signing, "ocr").unwrap();
        assert_eq!(made.voice, None);
        assert_eq!(listed(&made.dir, &f.trust), ["config.json", model.as_str()]);

        // A voice the split cannot lay out goes in whole, and the reason comes back.
        std::fs::remove_dir_all(&made.dir).unwrap();
        std::fs::write(f.model.join(&model), b"not a model").unwrap();
        let made = pack_as(&f, &f.signing, "speech").unwrap();
        let Some(VoicePacked::Whole {
            model: whole,
            reason,
        }) = made.voice
        else {
            panic!("{:?}", made.voice);
        };
        assert_eq!(whole, model);
        assert!(reason.starts_with("not an ONNX model"), "{reason}");
        assert_eq!(listed(&made.dir, &f.trust), ["config.json", model.as_str()]);
    }

    fn refusal(dir: &Path, trust: &Trust) -> String {
        verify_pack(dir, trust, 0).unwrap_err().to_string()
    }

    #[test]
    fn a_pack_made_from_a_folder_verifies_and_lists_every_file() {
        let f = fixture();
        let dir = pack(&f, &f.signing).unwrap();
        assert_eq!(dir, f.out.join("tiny-bert-1.0.0"));
        let verified = verify_pack(&dir, &f.trust, 0).unwrap();
        assert_eq!(verified.signed_by, f.signing.id());
        let listed: Vec<(&str, u64)> = verified
            .manifest
            .files
            .iter()
            .map(|file| (file.path.as_str(), file.size))
            .collect();
        assert_eq!(listed, [("config.json", 18), ("model.safetensors", 4096)]);
        assert_eq!(verified.manifest.capability, "embeddings");
        // Nothing is left beside the pack, and a second pack of the same version is refused.
        let names: Vec<_> = std::fs::read_dir(&f.out).unwrap().collect();
        assert_eq!(names.len(), 1);
        let again = pack(&f, &f.signing).unwrap_err().to_string();
        assert!(again.contains("exists already"), "{again}");
    }

    #[test]
    fn a_changed_missing_or_extra_file_is_refused_by_name() {
        let f = fixture();
        let dir = pack(&f, &f.signing).unwrap();
        let weights = dir.join("model.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&weights, &bytes).unwrap();
        let why = refusal(&dir, &f.trust);
        assert!(
            why.contains("model.safetensors has sha256 ") && why.contains("changed after signing"),
            "{why}"
        );
        // The start-up check does not hash: it passes, and only the full check catches it.
        verify_pack_manifest(&dir, &f.trust, 0).unwrap();
        bytes[100] ^= 1;
        bytes.push(0);
        std::fs::write(&weights, &bytes).unwrap();
        let why = refusal(&dir, &f.trust);
        assert!(
            why.contains("model.safetensors is 4097 bytes, but the signed manifest says 4096"),
            "{why}"
        );
        std::fs::remove_file(&weights).unwrap();
        assert!(refusal(&dir, &f.trust).contains("model.safetensors is missing"));
        std::fs::write(&weights, vec![7u8; 4096]).unwrap();
        verify_pack(&dir, &f.trust, 0).unwrap();
        std::fs::write(dir.join("extra.bin"), b"x").unwrap();
        let why = refusal(&dir, &f.trust);
        assert!(
            why.contains("extra.bin is in the folder but not in the signed manifest"),
            "{why}"
        );
    }

    #[test]
    fn a_pack_signed_by_a_key_the_box_does_not_trust_or_edited_is_refused() {
        let f = fixture();
        let stranger = SecretKey::from_seed(KeyKind::Signing, &[9; 32]);
        let dir = pack(&f, &stranger).unwrap();
        let why = refusal(&dir, &f.trust);
        assert!(why.contains("its signature does not hold"), "{why}");

        let f = fixture();
        let dir = pack(&f, &f.signing).unwrap();
        let manifest = dir.join(PACK_MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("embeddings", "transcription")).unwrap();
        let why = refusal(&dir, &f.trust);
        assert!(why.contains("its signature does not hold"), "{why}");
        std::fs::remove_file(dir.join(PACK_SIGNATURE)).unwrap();
        assert!(refusal(&dir, &f.trust).contains("packs are signed"));
        let why = refusal(&f.model, &f.trust);
        assert!(why.contains("no pack.json"), "{why}");
    }

    #[test]
    fn bad_names_and_folders_are_refused_before_anything_is_written() {
        let f = fixture();
        let request = |name: &'static str, version: &'static str| PackRequest {
            model_dir: &f.model,
            name,
            version,
            capability: "embeddings",
            runs_on: RunsOn::Candle,
            key: &f.signing,
            out_dir: &f.out,
        };
        for (name, version) in [("Tiny", "1"), ("../x", "1"), ("x", ""), ("x", "1/2")] {
            let why = make_pack(&request(name, version)).unwrap_err().to_string();
            assert!(why.contains("use 1 to 64 lower-case"), "{why}");
        }
        std::fs::create_dir(f.model.join("nested")).unwrap();
        let why = make_pack(&request("x", "1")).unwrap_err().to_string();
        assert!(why.contains("nested is not a plain file"), "{why}");
        assert_eq!(std::fs::read_dir(&f.out).unwrap().count(), 0);
    }
}
