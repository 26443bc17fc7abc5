//! Signed skill packs: a skill folder with a manifest of its files and a signature of that
//! manifest by an update signing key, so a skill can come from its publisher to a recipe or to
//! a box whole and unchanged. `carapace skill pack` makes one (a zip, as the owner sends it in
//! the chat); the builder checks a recipe's `[[skill_pack]]` with the recipe's update keys and
//! agentd checks one the owner sends with the image's, before either uses a byte of it.
//!
//! ```text
//! text-format/                the skill's folder, as check_folder reads it
//!     pack.json               {"format":1,"skill":…,"version":…,
//!                              "files":[{"path":"SKILL.md","size":…,"sha256":…},…]}
//!     pack.sig                {"key_id":…,"ed25519":…}: a signing key's signature of
//!                              pack.json's bytes (carapace_update::Purpose::SkillPack)
//!     SKILL.md skill.toml skill.wasm references/…
//! ```
//! The manifest lists exactly the files [`check_folder`](crate::check_folder) takes (a
//! skill's source code is built into its component and not part of it); any other file in the
//! folder, hidden ones aside, is refused: a pack is exactly what was signed.

use std::path::{Path, PathBuf};

use board_support::atomic_file;
use carapace_update::{DetachedSignature, KeyId, Purpose, SecretKey, Trust};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

pub const PACK_MANIFEST: &str = "pack.json";
pub const PACK_SIGNATURE: &str = "pack.sig";
const FORMAT: u32 = 1;
/// A manifest lists a skill's files (at most the archive's 1024 entries); more is not one.
const MAX_MANIFEST_BYTES: u64 = 256 << 10;
const MAX_SIGNATURE_BYTES: u64 = 1 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    pub format: u32,
    /// The skill's name, as its SKILL.md says.
    pub skill: String,
    /// The publisher's version: 1 to 64 letters, digits, '.', '-' and '+'.
    pub version: String,
    pub files: Vec<PackFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    /// Its path in the skill's folder, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A pack whose signature and files were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPack {
    pub version: String,
    pub signed_by: KeyId,
}

/// What a pack's folder says of itself, read without checking it: for lists of skills that
/// were checked when they came (the image's by the builder, the owner's at install).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackLabel {
    pub version: String,
    pub key_id: String,
}

/// Whether `dir` claims to be a signed pack (either of its two files is there).
pub fn is_pack(dir: &Path) -> bool {
    dir.join(PACK_MANIFEST).exists() || dir.join(PACK_SIGNATURE).exists()
}

/// Signs the skill folder `dir` as version `version` of its skill: writes its pack.json and
/// pack.sig (each atomically, replacing an older pair) and returns the manifest. The folder is
/// checked as the box checks a skill first.
pub fn sign(dir: &Path, version: &str, key: &SecretKey) -> Result<PackManifest, Error> {
    let (skill, files) = crate::check_folder(dir)?;
    let refuse = |problem: String| Error::Pack {
        dir: dir.to_path_buf(),
        problem,
    };
    let mut listed = Vec::new();
    for (inside, path) in files.iter().filter(|(inside, _)| !own_file(inside)) {
        let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
        listed.push(PackFile {
            path: inside.clone(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    let manifest = PackManifest {
        format: FORMAT,
        skill: skill.name,
        version: version.to_string(),
        files: listed,
    };
    manifest.validate().map_err(refuse)?;
    let mut bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| refuse(format!("writing {PACK_MANIFEST}: {error}")))?;
    bytes.push(b'\n');
    let signature = DetachedSignature::sign(key, Purpose::SkillPack, &bytes)
        .map_err(|error| refuse(format!("signing: {error}")))?;
    // The signature goes first: a manifest never sits beside a signature of another one for
    // longer than a crash between the two renames, and verify refuses that pair.
    for (name, contents) in [
        (PACK_SIGNATURE, signature.to_file_text().into_bytes()),
        (PACK_MANIFEST, bytes),
    ] {
        let path = dir.join(name);
        atomic_file::write(&path, &contents, 0o644).map_err(Error::io("write", &path))?;
    }
    Ok(manifest)
}

/// Checks the pack in `dir`: pack.json signed by a key `trust` holds at `now` (seconds since
/// 1970), naming the skill of the folder's SKILL.md, and the folder holding exactly the listed
/// files with their sizes and sha256.
pub fn verify(dir: &Path, trust: &Trust, now: u64) -> Result<VerifiedPack, Error> {
    let refuse = |problem: String| Error::Pack {
        dir: dir.to_path_buf(),
        problem,
    };
    let manifest_bytes = read_bounded(dir, PACK_MANIFEST, MAX_MANIFEST_BYTES)?;
    let signature_bytes = read_bounded(dir, PACK_SIGNATURE, MAX_SIGNATURE_BYTES)?;
    let (manifest, signed_by): (PackManifest, _) = trust
        .open_signed(
            Purpose::SkillPack,
            &manifest_bytes,
            &signature_bytes,
            PACK_MANIFEST,
            now,
        )
        .map_err(refuse)?;
    manifest
        .validate()
        .map_err(|problem| refuse(format!("{PACK_MANIFEST}: {problem}")))?;
    let (skill, _) = crate::check_folder(dir)?;
    if skill.name != manifest.skill {
        return Err(refuse(format!(
            "it was signed as skill {}, but its SKILL.md names {}",
            manifest.skill, skill.name
        )));
    }
    for inside in every_file(dir)? {
        if !own_file(&inside) && !manifest.files.iter().any(|file| file.path == inside) {
            return Err(refuse(format!(
                "{inside} is in the skill but not in the signed manifest"
            )));
        }
    }
    for file in &manifest.files {
        let path = dir.join(&file.path);
        let bytes = std::fs::read(&path)
            .map_err(|error| refuse(format!("{} is missing ({error})", file.path)))?;
        if bytes.len() as u64 != file.size {
            return Err(refuse(format!(
                "{} is {} bytes, but the signed manifest says {}",
                file.path,
                bytes.len(),
                file.size
            )));
        }
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != file.sha256 {
            return Err(refuse(format!(
                "{} has sha256 {actual}, but the signed manifest says {}: it was changed after \
                 signing",
                file.path, file.sha256
            )));
        }
    }
    Ok(VerifiedPack {
        version: manifest.version,
        signed_by,
    })
}

/// The version and key a pack folder names, unchecked; None for a folder that is no pack or
/// whose files cannot be read as one.
pub fn label(dir: &Path) -> Option<PackLabel> {
    let manifest: PackManifest =
        serde_json::from_slice(&read_bounded(dir, PACK_MANIFEST, MAX_MANIFEST_BYTES).ok()?).ok()?;
    let signature = DetachedSignature::parse(
        &read_bounded(dir, PACK_SIGNATURE, MAX_SIGNATURE_BYTES).ok()?,
        "",
    )
    .ok()?;
    Some(PackLabel {
        version: manifest.version,
        key_id: signature.key_id.to_string(),
    })
}

/// The pack's own two files, which the manifest does not list.
pub fn own_file(inside: &str) -> bool {
    inside == PACK_MANIFEST || inside == PACK_SIGNATURE
}

impl PackManifest {
    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} (this build reads format {FORMAT})",
                self.format
            ));
        }
        let version_like = self.version.len() <= 64
            && !self.version.is_empty()
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
        if !version_like {
            return Err(format!(
                "version {:?}: use 1 to 64 letters, digits, '.', '-' and '+'",
                self.version
            ));
        }
        if self.files.is_empty() {
            return Err("it lists no files".into());
        }
        for (i, file) in self.files.iter().enumerate() {
            let plain = !file.path.is_empty()
                && !own_file(&file.path)
                && !file.path.contains(['\\', '\0'])
                && file.path.split('/').all(|part| {
                    !part.is_empty() && part != "." && part != ".." && !part.starts_with('.')
                });
            if !plain {
                return Err(format!(
                    "file {:?} is not a path inside the skill's folder",
                    file.path
                ));
            }
            if self.files[..i].iter().any(|f| f.path == file.path) {
                return Err(format!("file {:?} is listed twice", file.path));
            }
            let hex = file.sha256.len() == 64
                && file
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(format!(
                    "file {:?}: sha256 must be 64 lower-case hex digits",
                    file.path
                ));
            }
        }
        Ok(())
    }
}

fn read_bounded(dir: &Path, name: &str, limit: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let path = dir.join(name);
    let file = std::fs::File::open(&path).map_err(|error| Error::Pack {
        dir: dir.to_path_buf(),
        problem: format!(
            "no {name} ({error}): a signed pack has {PACK_MANIFEST} and {PACK_SIGNATURE}"
        ),
    })?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read", &path))?;
    if bytes.len() as u64 > limit {
        return Err(Error::Pack {
            dir: dir.to_path_buf(),
            problem: format!("{name} is over {limit} bytes, more than any pack's"),
        });
    }
    Ok(bytes)
}

/// Every plain file below `dir` but hidden ones (which neither the zip nor the catalog take),
/// as `/`-separated paths inside it.
fn every_file(dir: &Path) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(Error::io("read", &folder))? {
            let entry = entry.map_err(Error::io("read", &folder))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if entry
                .file_type()
                .map_err(Error::io("look at", &path))?
                .is_dir()
            {
                pending.push(path);
            } else {
                let inside = path.strip_prefix(dir).unwrap_or(&path);
                found.push(inside.to_string_lossy().into_owned());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapace_update::KeyKind;

    struct Fixture {
        _root: tempfile::TempDir,
        skill: PathBuf,
        signing: SecretKey,
        trust: Trust,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let skill = root.path().join("tea");
        std::fs::create_dir_all(skill.join("notes")).unwrap();
        std::fs::write(
            skill.join(crate::SKILL_FILE),
            "---\nname: tea\ndescription: Brew tea.\n---\nRead notes/steeping.md.\n",
        )
        .unwrap();
        std::fs::write(skill.join("notes/steeping.md"), "Green: 2 minutes.\n").unwrap();
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let root_key = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
        let trust = Trust::of_keys(&root_key, &[&signing]).unwrap();
        Fixture {
            _root: root,
            skill,
            signing,
            trust,
        }
    }

    fn refusal(f: &Fixture) -> String {
        verify(&f.skill, &f.trust, 0).unwrap_err().to_string()
    }

    #[test]
    fn a_signed_folder_verifies_with_its_version_and_key_and_lists_every_file() {
        let f = fixture();
        let manifest = sign(&f.skill, "1.2.0", &f.signing).unwrap();
        let listed: Vec<(&str, u64)> = manifest
            .files
            .iter()
            .map(|file| (file.path.as_str(), file.size))
            .collect();
        assert_eq!(listed, [("SKILL.md", 65), ("notes/steeping.md", 18)]);
        let verified = verify(&f.skill, &f.trust, 0).unwrap();
        assert_eq!(
            verified,
            VerifiedPack {
                version: "1.2.0".into(),
                signed_by: f.signing.id(),
            }
        );
        assert_eq!(
            label(&f.skill),
            Some(PackLabel {
                version: "1.2.0".into(),
                key_id: f.signing.id().to_string(),
            })
        );
        // Signing again (a new version) replaces the pair, and the catalog shows its label.
        sign(&f.skill, "1.3.0", &f.signing).unwrap();
        assert_eq!(verify(&f.skill, &f.trust, 0).unwrap().version, "1.3.0");
        let (catalog, _) = crate::Catalog::load(f.skill.parent().unwrap());
        assert_eq!(catalog.skills()[0].pack.as_ref().unwrap().version, "1.3.0");
        // Nothing of the atomic writes is left beside them.
        let mut names: Vec<String> = std::fs::read_dir(&f.skill)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["SKILL.md", "notes", "pack.json", "pack.sig"]);
    }

    #[test]
    fn a_changed_missing_or_extra_file_is_refused_by_name() {
        let f = fixture();
        sign(&f.skill, "1", &f.signing).unwrap();
        let notes = f.skill.join("notes/steeping.md");
        std::fs::write(&notes, "Green: 9 minutes.\n").unwrap();
        let why = refusal(&f);
        assert!(
            why.contains("notes/steeping.md has sha256 ") && why.contains("changed after signing"),
            "{why}"
        );
        std::fs::write(&notes, "Green: 2 minutes!!\n").unwrap();
        let why = refusal(&f);
        assert!(
            why.contains("notes/steeping.md is 19 bytes, but the signed manifest says 18"),
            "{why}"
        );
        std::fs::remove_file(&notes).unwrap();
        assert!(refusal(&f).contains("notes/steeping.md is missing"));
        std::fs::write(&notes, "Green: 2 minutes.\n").unwrap();
        verify(&f.skill, &f.trust, 0).unwrap();
        std::fs::write(f.skill.join("notes/extra.md"), "more\n").unwrap();
        let why = refusal(&f);
        assert!(
            why.contains("notes/extra.md is in the skill but not in the signed manifest"),
            "{why}"
        );
        // Hidden files are neither the zip's nor the catalog's, so not the pack's either.
        std::fs::remove_file(f.skill.join("notes/extra.md")).unwrap();
        std::fs::write(f.skill.join(".DS_Store"), "junk").unwrap();
        verify(&f.skill, &f.trust, 0).unwrap();
    }

    #[test]
    fn a_pack_signed_by_a_stranger_edited_renamed_or_unsigned_is_refused() {
        let f = fixture();
        let stranger = SecretKey::from_seed(KeyKind::Signing, &[9; 32]);
        sign(&f.skill, "1", &stranger).unwrap();
        let why = refusal(&f);
        assert!(why.contains("its signature does not hold"), "{why}");

        sign(&f.skill, "1", &f.signing).unwrap();
        let manifest = f.skill.join(PACK_MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("\"1\"", "\"2\"")).unwrap();
        assert!(refusal(&f).contains("its signature does not hold"));

        // A pack of another skill's name, its SKILL.md's changed to match the folder: the
        // manifest's name is signed, the SKILL.md is not what was signed.
        std::fs::write(&manifest, text).unwrap();
        let md = f.skill.join(crate::SKILL_FILE);
        let original = std::fs::read_to_string(&md).unwrap();
        std::fs::write(&md, original.replace("Brew tea.", "Brew tea!")).unwrap();
        assert!(refusal(&f).contains("SKILL.md has sha256 "));
        std::fs::write(&md, original).unwrap();

        std::fs::remove_file(f.skill.join(PACK_SIGNATURE)).unwrap();
        let why = refusal(&f);
        assert!(
            why.contains("no pack.sig (")
                && why.contains("a signed pack has pack.json and pack.sig"),
            "{why}"
        );
        assert!(is_pack(&f.skill));
        std::fs::remove_file(&manifest).unwrap();
        assert!(!is_pack(&f.skill));
        assert_eq!(label(&f.skill), None);
    }

    #[test]
    fn a_manifest_with_a_path_outside_the_folder_or_a_bad_version_is_refused_though_signed() {
        let f = fixture();
        for (version, path, why) in [
            ("1 0", "SKILL.md", "use 1 to 64 letters"),
            (
                "1",
                "../SKILL.md",
                "is not a path inside the skill's folder",
            ),
            ("1", "notes//x", "is not a path inside the skill's folder"),
            ("1", "pack.sig", "is not a path inside the skill's folder"),
        ] {
            let manifest = PackManifest {
                format: FORMAT,
                skill: "tea".into(),
                version: version.into(),
                files: vec![PackFile {
                    path: path.into(),
                    size: 1,
                    sha256: "0".repeat(64),
                }],
            };
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let signature =
                DetachedSignature::sign(&f.signing, Purpose::SkillPack, &bytes).unwrap();
            std::fs::write(f.skill.join(PACK_MANIFEST), &bytes).unwrap();
            std::fs::write(f.skill.join(PACK_SIGNATURE), signature.to_file_text()).unwrap();
            let refused = refusal(&f);
            assert!(refused.contains(why), "{path}: {refused}");
        }
        // A model pack's signature is no skill pack's.
        sign(&f.skill, "1", &f.signing).unwrap();
        let bytes = std::fs::read(f.skill.join(PACK_MANIFEST)).unwrap();
        let signature = DetachedSignature::sign(&f.signing, Purpose::ModelPack, &bytes).unwrap();
        std::fs::write(f.skill.join(PACK_SIGNATURE), signature.to_file_text()).unwrap();
        assert!(refusal(&f).contains("its signature does not hold"));
    }
}
