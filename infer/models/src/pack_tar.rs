//! A model pack as one file, for a link a box downloads (`/add_model LINK`): a plain tar of the
//! pack's folder.
//!
//! ```text
//! tiny-smolvlm-1.0.0.tar
//!     tiny-smolvlm-1.0.0/pack.json      the signed manifest, first
//!     tiny-smolvlm-1.0.0/pack.sig
//!     tiny-smolvlm-1.0.0/config.json    the model's files, in the manifest's order
//!     ...
//! ```
//! Uncompressed: weights do not compress, and a plain tar unpacks as it arrives, so the box
//! never holds a second copy. Unpacking takes regular files with plain names only (one top
//! folder or none) and stops at a byte budget; the signature and the sha256 of every file are
//! checked afterwards, on what was written (`verify_pack`), before anything uses it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::pack::{PACK_MANIFEST, PACK_SIGNATURE, PackManifest, plain_file_name};

/// Entries beyond a manifest's most files (and its manifest and signature) are not a pack.
const MAX_ENTRIES: usize = crate::pack::MAX_FILES + 2;

/// Writes the pack folder `pack_dir` as `<out_dir>/<folder name>.tar` (written under another
/// name, synced and renamed, so the tar is whole or absent) and returns its path.
pub fn write_pack_tar(pack_dir: &Path, out_dir: &Path) -> Result<PathBuf> {
    let invalid = |reason: String| Error::Pack {
        dir: pack_dir.to_path_buf(),
        reason,
    };
    let manifest_path = pack_dir.join(PACK_MANIFEST);
    let manifest: PackManifest = serde_json::from_slice(
        &std::fs::read(&manifest_path).map_err(Error::io("reading", &manifest_path))?,
    )
    .map_err(|error| invalid(format!("{PACK_MANIFEST}: {error}")))?;
    let top = manifest.dir_name();
    let tar_path = out_dir.join(format!("{top}.tar"));
    let partial = out_dir.join(format!(".{top}.tar.partial"));
    let file = std::fs::File::create(&partial).map_err(Error::io("creating", &partial))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let names = [PACK_MANIFEST, PACK_SIGNATURE]
        .into_iter()
        .chain(manifest.files.iter().map(|file| file.path.as_str()));
    for name in names {
        let path = pack_dir.join(name);
        let mut source = std::fs::File::open(&path).map_err(Error::io("reading", &path))?;
        let size = source
            .metadata()
            .map_err(Error::io("reading", &path))?
            .len();
        // The same bytes for the same pack: no owner, time or mode from this machine.
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{top}/{name}"), &mut source)
            .map_err(Error::io("writing", &partial))?;
    }
    let mut writer = builder
        .into_inner()
        .map_err(Error::io("writing", &partial))?;
    writer.flush().map_err(Error::io("writing", &partial))?;
    writer
        .get_ref()
        .sync_all()
        .map_err(Error::io("syncing", &partial))?;
    std::fs::rename(&partial, &tar_path).map_err(Error::io("renaming into place", &tar_path))?;
    Ok(tar_path)
}

/// Unpacks the pack tar read from `from` into the empty folder `into`, writing at most
/// `max_bytes` of files; returns the bytes written. Nothing here is trusted yet: check the
/// folder with `verify_pack` before using it, and remove it on an error.
pub fn unpack_pack_tar(from: impl Read, into: &Path, max_bytes: u64) -> Result<u64> {
    let refused = |reason: String| Error::Pack {
        dir: into.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(from);
    let entries = archive
        .entries()
        .map_err(|error| refused(format!("reading the tar: {error}")))?;
    let mut top: Option<String> = None;
    let mut written: u64 = 0;
    let mut files = 0;
    for entry in entries {
        let mut entry = entry.map_err(|error| refused(format!("reading the tar: {error}")))?;
        let path = entry
            .path()
            .map_err(|error| refused(format!("an entry's name: {error}")))?
            .into_owned();
        let shown = path.display().to_string();
        let kind = entry.header().entry_type();
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(refused(format!(
                        "{shown:?} leaves the pack's folder; a pack holds plain names only"
                    )));
                }
            }
        }
        let (folder, name) = match (parts.as_slice(), kind) {
            ([folder], tar::EntryType::Directory) => (Some(folder.clone()), None),
            ([name], tar::EntryType::Regular) => (None, Some(name.clone())),
            ([folder, name], tar::EntryType::Regular) => (Some(folder.clone()), Some(name.clone())),
            (_, tar::EntryType::Regular | tar::EntryType::Directory) => {
                return Err(refused(format!(
                    "{shown:?} is nested; a pack is one folder of files"
                )));
            }
            (_, other) => {
                return Err(refused(format!(
                    "{shown:?} is a {other:?} entry; a pack holds regular files only"
                )));
            }
        };
        if let Some(folder) = folder {
            match &top {
                Some(seen) if *seen != folder => {
                    return Err(refused(format!(
                        "it holds two folders, {seen} and {folder}; a tar holds one pack"
                    )));
                }
                _ => top = Some(folder),
            }
        }
        let Some(name) = name else {
            continue;
        };
        if !(name == PACK_MANIFEST || name == PACK_SIGNATURE || plain_file_name(&name)) {
            return Err(refused(format!(
                "{shown:?} is not a file name a pack holds"
            )));
        }
        files += 1;
        if files > MAX_ENTRIES {
            return Err(refused(format!(
                "it holds more than {MAX_ENTRIES} files, more than any pack"
            )));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        written = written.saturating_add(size);
        if written > max_bytes {
            return Err(Error::PackNoRoom { room: max_bytes });
        }
        let target = into.join(&name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::AlreadyExists => refused(format!("{name} is in the tar twice")),
                _ => Error::Io {
                    action: "creating",
                    path: target.clone(),
                    source: error,
                },
            })?;
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut file)
            .map_err(|error| refused(format!("reading {name} from the tar: {error}")))?;
        if copied != size {
            return Err(refused(format!(
                "{name} ends after {copied} of its {size} bytes"
            )));
        }
        file.sync_all().map_err(Error::io("syncing", &target))?;
    }
    if files == 0 {
        return Err(refused("the tar holds no files".into()));
    }
    std::fs::File::open(into)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io("syncing", into))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::RunsOn;
    use crate::pack::{PackRequest, make_pack, verify_pack};
    use carapace_update::{KeyKind, SecretKey, Trust};

    struct Lab {
        dir: tempfile::TempDir,
        trust: Trust,
        pack: PathBuf,
    }

    fn lab() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), b"{\"layers\": 2}\n").unwrap();
        std::fs::write(model.join("model.safetensors"), vec![7u8; 70_000]).unwrap();
        let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let pack = make_pack(&PackRequest {
            model_dir: &model,
            name: "tiny",
            version: "1.0.0",
            capability: "embeddings",
            runs_on: RunsOn::Candle,
            key: &signing,
            out_dir: dir.path(),
        })
        .unwrap()
        .dir;
        let trust = Trust::of_keys(&root, &[&signing]).unwrap();
        Lab { dir, trust, pack }
    }

    /// A tar entry: its name, type and bytes.
    type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

    /// A tar with the given entries.
    fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/shadow").unwrap();
            }
            // set_path refuses "..": write the name into the header's bytes as a tar may.
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpacked(lab: &Lab, tar: &[u8], max_bytes: u64) -> (Result<u64>, PathBuf) {
        let into = lab.dir.path().join(format!("into-{}", rand_suffix()));
        std::fs::create_dir(&into).unwrap();
        (unpack_pack_tar(tar, &into, max_bytes), into)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn a_pack_goes_through_a_tar_and_comes_out_verified_and_the_same() {
        let lab = lab();
        let tar = write_pack_tar(&lab.pack, lab.dir.path()).unwrap();
        assert_eq!(tar, lab.dir.path().join("tiny-1.0.0.tar"));
        let again = std::fs::read(&tar).unwrap();
        let (result, into) = unpacked(&lab, &again, 1 << 20);
        assert_eq!(result.unwrap(), written(&lab.pack));
        let verified = verify_pack(&into, &lab.trust, 0).unwrap();
        assert_eq!(verified.manifest.name, "tiny");
        // The same pack gives the same bytes.
        std::fs::remove_file(&tar).unwrap();
        let twice = write_pack_tar(&lab.pack, lab.dir.path()).unwrap();
        assert_eq!(std::fs::read(twice).unwrap(), again);
    }

    /// The bytes of the pack folder's files.
    fn written(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn a_pack_larger_than_the_room_is_stopped_at_the_first_file_past_it() {
        let lab = lab();
        let tar = std::fs::read(write_pack_tar(&lab.pack, lab.dir.path()).unwrap()).unwrap();
        let (result, into) = unpacked(&lab, &tar, 10_000);
        assert!(
            matches!(result, Err(Error::PackNoRoom { room: 10_000 })),
            "{result:?}"
        );
        assert!(!into.join("model.safetensors").exists());
    }

    #[test]
    fn entries_that_leave_the_folder_or_are_not_plain_files_are_refused_with_their_name() {
        let lab = lab();
        let regular = tar::EntryType::Regular;
        let cases: [(&[Entry<'_>], &str); 7] = [
            (
                &[("../evil", regular, b"x")],
                "\"../evil\" leaves the pack's folder",
            ),
            (
                &[("/etc/passwd", regular, b"x")],
                "\"/etc/passwd\" leaves the pack's folder",
            ),
            (
                &[("p/link", tar::EntryType::Symlink, b"")],
                "\"p/link\" is a Symlink entry; a pack holds regular files only",
            ),
            (&[("p/q/r", regular, b"x")], "\"p/q/r\" is nested"),
            (
                &[("a/x", regular, b"x"), ("b/y", regular, b"y")],
                "it holds two folders, a and b",
            ),
            (
                &[("p/x", regular, b"x"), ("p/x", regular, b"y")],
                "x is in the tar twice",
            ),
            (
                &[("p/", tar::EntryType::Directory, b"")],
                "the tar holds no files",
            ),
        ];
        for (entries, why) in cases {
            let (result, into) = unpacked(&lab, &tar_of(entries), 1 << 20);
            let message = result.unwrap_err().to_string();
            assert!(message.contains(why), "{entries:?}: {message}");
            assert!(!lab.dir.path().join("evil").exists());
            assert!(!into.join("link").exists());
        }
    }

    #[test]
    fn a_changed_file_unpacks_but_does_not_verify() {
        let lab = lab();
        let mut tar = std::fs::read(write_pack_tar(&lab.pack, lab.dir.path()).unwrap()).unwrap();
        // The weights are 7s; change one of them.
        let at = tar.iter().rposition(|&b| b == 7).unwrap();
        tar[at] = 8;
        let (result, into) = unpacked(&lab, &tar, 1 << 20);
        result.unwrap();
        let why = verify_pack(&into, &lab.trust, 0).unwrap_err().to_string();
        assert!(
            why.contains("model.safetensors has sha256 ") && why.contains("changed after signing"),
            "{why}"
        );
    }
}
