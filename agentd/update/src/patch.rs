//! Binary patches: a file's new bytes compressed by zstd with one exact older file as the
//! reference (`zstd --patch-from`, long-distance matching over the whole file), so a rebuilt
//! program costs what changed in it, not its compressed size. Chunks alone cannot do that: a
//! change to agentd moves its code and shifts every compressed block of it in the erofs root.
//!
//! The builder makes a patch from an earlier release's slot file; the manifest names the file
//! it applies to by size and SHA-256. The box uses it when its running slot holds exactly that
//! file and the patch's chunks cost less than the file's missing chunks (`plan`). Applying
//! maps the running file (a slot's partition: read-only, page cache rather than heap), checks
//! it still hashes as the manifest says (a raw read bypasses dm-verity), and checks the result
//! against the manifest's size and SHA-256 like any assembled file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::assemble::CheckedWriter;
use crate::chunking::{ChunkIndex, ChunkRef, Source, lacking_bytes};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::manifest::{Artifact, Manifest, Patch};

/// zstd level for patches: level 12 came within 3 % of level 19's size on a root image at a
/// tenth of the time (docs/updates.md).
pub const LEVEL: i32 = 12;
/// The largest window a box accepts: a 1 GiB slot file.
const MAX_WINDOW_LOG: u32 = 30;

/// The patch that turns `from` into `to`.
pub fn make(from: &Path, to: &Path) -> Result<Vec<u8>> {
    let old = std::fs::read(from).map_err(Error::io("read", from))?;
    let new = std::fs::read(to).map_err(Error::io("read", to))?;
    let window = window_log(old.len().max(new.len()) as u64);
    if window > MAX_WINDOW_LOG {
        return Err(Error::malformed(
            format!("a patch from {}", from.display()),
            format!(
                "files beyond {} bytes are not patched",
                1u64 << MAX_WINDOW_LOG
            ),
        ));
    }
    let encode = || -> std::io::Result<Vec<u8>> {
        let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), LEVEL, &old)?;
        encoder.long_distance_matching(true)?;
        encoder.window_log(window)?;
        encoder.set_pledged_src_size(Some(new.len() as u64))?;
        encoder.include_contentsize(true)?;
        encoder.write_all(&new)?;
        encoder.finish()
    };
    encode().map_err(Error::io("make a patch for", to))
}

/// The window that reaches from the end of the new file back to the start of the old one.
fn window_log(longest: u64) -> u32 {
    let mut log = 10;
    while log < 63 && (1u64 << log) < longest {
        log += 1;
    }
    log
}

/// What a box downloads for a manifest, and which files it makes from patches.
#[derive(Debug)]
pub struct Plan<'m> {
    /// Each chunk once, in the order the manifest lists them.
    pub download: Vec<ChunkRef>,
    patched: Vec<&'m Patch>,
}

impl<'m> Plan<'m> {
    /// The patch chosen for the file named `name`, if any.
    pub fn patch_for(&self, name: &str) -> Option<&'m Patch> {
        self.patched
            .iter()
            .copied()
            .find(|patch| patch.file == name)
    }

    pub fn download_bytes(&self) -> u64 {
        self.download.iter().map(|chunk| chunk.length as u64).sum()
    }

    pub fn patches(&self) -> usize {
        self.patched.len()
    }
}

/// For each file, its chunks that `local` lacks, or the chunks of a patch from a file
/// `local` holds when those are fewer bytes.
pub fn plan<'m>(local: &ChunkIndex, manifest: &'m Manifest) -> Plan<'m> {
    let lacking = |chunks: &[ChunkRef]| lacking_bytes(local, chunks);
    let mut patched = Vec::new();
    let mut sources: Vec<&[ChunkRef]> = Vec::new();
    for artifact in manifest.artifacts() {
        let best = manifest
            .patches
            .iter()
            .filter(|patch| patch.file == artifact.name)
            .filter(|patch| local.source(patch.from_size, &patch.from_sha256).is_some())
            .map(|patch| (lacking(&patch.chunks), patch))
            .min_by_key(|(bytes, _)| *bytes);
        match best {
            Some((bytes, patch)) if bytes < lacking(artifact.chunks) => {
                patched.push(patch);
                sources.push(&patch.chunks);
            }
            _ => sources.push(artifact.chunks),
        }
    }
    let mut seen = HashSet::new();
    let download = sources
        .into_iter()
        .flatten()
        .filter(|chunk| !local.contains(&chunk.sha256) && seen.insert(chunk.sha256))
        .copied()
        .collect();
    Plan { download, patched }
}

/// Writes `artifact` to `target` from `patch` (its bytes, already checked) and the local
/// file it applies to, and checks the result.
pub(crate) fn apply(
    artifact: &Artifact,
    patch: &Patch,
    patch_bytes: &[u8],
    local: &ChunkIndex,
    target: &mut impl Write,
) -> Result<()> {
    let source = local
        .source(patch.from_size, &patch.from_sha256)
        .ok_or_else(|| Error::PatchSourceChanged {
            file: artifact.name.to_owned(),
            path: "the running slot".into(),
            problem: "no file there has the size and hash the patch applies to".into(),
        })?;
    let from = map(source)?;
    let found = Sha256Digest::of(&from);
    if found != patch.from_sha256 {
        return Err(Error::PatchSourceChanged {
            file: artifact.name.to_owned(),
            path: source.path.clone(),
            problem: format!("its bytes now hash to {found}"),
        });
    }
    let failed = |reason: String| Error::PatchFailed {
        file: artifact.name.to_owned(),
        reason,
    };
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(patch_bytes, &from)
        .map_err(|err| failed(err.to_string()))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|err| failed(err.to_string()))?;
    let mut out = CheckedWriter::new(artifact, target);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = decoder
            .read(&mut buffer)
            .map_err(|err| failed(err.to_string()))?;
        if read == 0 {
            break;
        }
        if out.written() + read as u64 > artifact.size {
            return Err(failed(format!(
                "it makes more than the {} bytes the manifest gives the file",
                artifact.size
            )));
        }
        out.write(&buffer[..read])?;
    }
    out.finish()
}

/// The first `size` bytes of the source, mapped read-only.
fn map(source: &Source) -> Result<memmap2::Mmap> {
    let file: &File = &source.file;
    // SAFETY: the map is only read while the patch is applied. The file is the running slot's
    // root partition or one of its boot files: nothing writes either while the box runs that
    // slot (updates write the other slot), and a change would show up as a hash mismatch
    // (checked above) or a patch that does not reproduce the manifest's hash (checked after).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len(usize::try_from(source.size).unwrap_or(usize::MAX))
            .map(file)
    };
    map.map_err(Error::io("map", &source.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::{ChunkerParams, tests::noise};

    /// An old file, a new one with a few bytes changed, the patch between them, and an index
    /// of the old one as the box would have it.
    struct Case {
        dir: tempfile::TempDir,
        patch: Patch,
        patch_bytes: Vec<u8>,
        new: Vec<u8>,
    }

    fn case() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let old = noise(1, 300_000);
        let mut new = old.clone();
        new[1000] ^= 1;
        new.splice(200_000..200_000, noise(2, 5000));
        std::fs::write(dir.path().join("old"), &old).unwrap();
        std::fs::write(dir.path().join("new"), &new).unwrap();
        let patch_bytes = make(&dir.path().join("old"), &dir.path().join("new")).unwrap();
        assert!(patch_bytes.len() < 10_000, "{}", patch_bytes.len());
        let patch = Patch {
            file: "root".into(),
            from_size: old.len() as u64,
            from_sha256: Sha256Digest::of(&old),
            size: patch_bytes.len() as u64,
            sha256: Sha256Digest::of(&patch_bytes),
            chunks: Vec::new(),
        };
        Case {
            dir,
            patch,
            patch_bytes,
            new,
        }
    }

    fn apply_to_vec(case: &Case, local: &ChunkIndex) -> Result<Vec<u8>> {
        let artifact = Artifact {
            name: "root",
            boot_path: None,
            size: case.new.len() as u64,
            sha256: Sha256Digest::of(&case.new),
            chunks: &[],
        };
        let mut out = Vec::new();
        apply(&artifact, &case.patch, &case.patch_bytes, local, &mut out)?;
        Ok(out)
    }

    fn index(path: &Path) -> ChunkIndex {
        let mut index = ChunkIndex::new();
        index.add_file(path, None, ChunkerParams::DEFAULT).unwrap();
        index
    }

    #[test]
    fn a_patch_makes_the_new_file_from_the_old() {
        let case = case();
        let local = index(&case.dir.path().join("old"));
        assert_eq!(apply_to_vec(&case, &local).unwrap(), case.new);
    }

    #[test]
    fn an_old_file_changed_since_it_was_indexed_is_refused() {
        let case = case();
        let old = case.dir.path().join("old");
        let local = index(&old);
        let mut bytes = std::fs::read(&old).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&old, bytes).unwrap();
        let err = apply_to_vec(&case, &local).unwrap_err();
        assert!(
            matches!(&err, Error::PatchSourceChanged { problem, .. } if problem.contains("hash to")),
            "{err}"
        );
    }

    #[test]
    fn a_box_without_the_old_file_has_no_source_for_the_patch() {
        let case = case();
        let local = index(&case.dir.path().join("new"));
        let err = apply_to_vec(&case, &local).unwrap_err();
        assert!(matches!(err, Error::PatchSourceChanged { .. }), "{err}");
    }

    #[test]
    fn a_damaged_patch_does_not_apply() {
        let mut case = case();
        let local = index(&case.dir.path().join("old"));
        let last = case.patch_bytes.len() - 20;
        case.patch_bytes[last] ^= 0xff;
        let err = apply_to_vec(&case, &local).unwrap_err();
        assert!(
            matches!(
                err,
                Error::PatchFailed { .. } | Error::AssembledMismatch { .. }
            ),
            "{err}"
        );
        // A patch for another file makes other bytes, which the whole-file hash catches.
        let mut case = self::case();
        case.new[0] ^= 1;
        let err = apply_to_vec(&case, &local).unwrap_err();
        assert!(matches!(err, Error::AssembledMismatch { .. }), "{err}");
    }

    #[test]
    fn the_window_reaches_back_over_the_longer_file() {
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(1 << 20), 20);
        assert_eq!(window_log((1 << 20) + 1), 21);
    }
}
