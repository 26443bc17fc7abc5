//! Putting a new slot together from chunks the box has (its running slot, `ChunkIndex`) and
//! chunks it downloaded (files named by their SHA-256 in a download directory), or, for a file
//! the plan makes from a patch, from the patch's chunks and the running slot's older file.
//!
//! The order of checks: `check_downloads` reads every downloaded chunk the plan needs and
//! refuses a missing, truncated, overlong or wrongly hashed one before the first byte goes to
//! the target. `assemble` then checks every chunk again as it copies it (downloaded or local:
//! a file may change between the two passes, and a raw read of the running slot bypasses
//! verity) and the whole file's SHA-256 at the end. A failure in that second pass leaves a
//! partly written target: the box writes only to the slot it is not running and arms it only
//! after every file assembled and verified, so such a target is never booted.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::chunking::{ChunkIndex, ChunkRef};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::manifest::Artifact;
use crate::patch::{self, Plan};

/// Checks, before anything is written, that `downloads` holds every chunk of `plan`, whole
/// and unchanged. Returns how many bytes they are.
pub fn check_downloads(plan: &Plan, downloads: &Path) -> Result<u64> {
    for chunk in &plan.download {
        read_download(downloads, chunk)?;
    }
    Ok(plan.download_bytes())
}

/// Writes `artifact` to `target`, from its chunks or the patch `plan` chose for it, and
/// checks the whole at the end.
pub fn assemble(
    artifact: &Artifact,
    plan: &Plan,
    local: &ChunkIndex,
    downloads: &Path,
    target: &mut impl Write,
) -> Result<()> {
    match plan.patch_for(artifact.name) {
        Some(patch) => {
            let mut bytes = Vec::with_capacity(usize::try_from(patch.size).unwrap_or(0));
            let name = format!("patch for {}", artifact.name);
            let patch_file = Artifact {
                name: &name,
                ..patch.as_artifact()
            };
            copy_chunks(&patch_file, local, downloads, &mut bytes)?;
            patch::apply(artifact, patch, &bytes, local, target)
        }
        None => copy_chunks(artifact, local, downloads, target),
    }
}

/// Writes `artifact` to `target` chunk by chunk, each checked, and checks the whole at the end.
fn copy_chunks(
    artifact: &Artifact,
    local: &ChunkIndex,
    downloads: &Path,
    target: &mut impl Write,
) -> Result<()> {
    let mut out = CheckedWriter::new(artifact, target);
    for chunk in artifact.chunks {
        let bytes = match local.read(chunk) {
            Ok(Some(bytes)) => bytes,
            // Not here, or no longer here as it was: the download must have it.
            Ok(None) | Err(Error::ChunkCorrupt { .. }) => read_download(downloads, chunk)?,
            Err(other) => return Err(other),
        };
        out.write(&bytes)?;
    }
    out.finish()
}

/// Writes a file's bytes to its target, hashing them, and checks at the end that they are the
/// file the manifest describes (its size and SHA-256).
pub(crate) struct CheckedWriter<'a, W: Write> {
    artifact: &'a Artifact<'a>,
    target: &'a mut W,
    whole: Sha256,
    written: u64,
}

impl<'a, W: Write> CheckedWriter<'a, W> {
    pub(crate) fn new(artifact: &'a Artifact<'a>, target: &'a mut W) -> Self {
        CheckedWriter {
            artifact,
            target,
            whole: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.whole.update(bytes);
        self.written += bytes.len() as u64;
        self.target
            .write_all(bytes)
            .map_err(|source| self.io("write", source))
    }

    pub(crate) fn finish(self) -> Result<()> {
        self.target
            .flush()
            .map_err(|source| self.io("flush", source))?;
        let found = Sha256Digest::from_hasher(self.whole);
        if self.written != self.artifact.size || found != self.artifact.sha256 {
            return Err(Error::AssembledMismatch {
                artifact: self.artifact.name.to_owned(),
                expected: self.artifact.sha256,
                found,
            });
        }
        Ok(())
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: format!("the new {}", self.artifact.name).into(),
            source,
        }
    }
}

/// A downloaded chunk's bytes, refused unless they are exactly the chunk.
pub(crate) fn read_download(downloads: &Path, chunk: &ChunkRef) -> Result<Vec<u8>> {
    let path = downloads.join(chunk.sha256.to_hex());
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ChunkMissing {
                sha256: chunk.sha256,
                path,
            });
        }
        Err(err) => return Err(Error::io("open", path)(err)),
    };
    let expected = chunk.length as u64;
    let mut bytes = Vec::with_capacity(chunk.length as usize);
    file.take(expected + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read", &path))?;
    let found = bytes.len() as u64;
    if found < expected {
        return Err(Error::ChunkTruncated {
            sha256: chunk.sha256,
            expected,
            found,
        });
    }
    if found > expected {
        return Err(Error::ChunkCorrupt {
            sha256: chunk.sha256,
            location: path.display().to_string(),
            problem: format!("it is longer than its {expected} bytes"),
        });
    }
    let hashed = Sha256Digest::of(&bytes);
    if hashed != chunk.sha256 {
        return Err(Error::ChunkCorrupt {
            sha256: chunk.sha256,
            location: path.display().to_string(),
            problem: format!("its bytes hash to {hashed}"),
        });
    }
    Ok(bytes)
}
