//! Content-defined chunks (FastCDC, 2020 variant): a file is cut where its content says, not
//! at fixed offsets, so bytes inserted or removed early in a root image move the cuts with
//! them and the chunks after them keep their hashes. Each chunk is named by its SHA-256; a box
//! cuts its running slot with the new manifest's parameters and downloads only the chunks whose
//! names it does not find there.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};

/// Chunk sizes in bytes: FastCDC cuts no chunk shorter than `min` (but the last) nor longer
/// than `max`, and aims at `avg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// 64 KiB on average: a change to one program costs a few chunks beyond its own bytes,
    /// and a 200 MiB root is ~3,000 files on the server and ~450 KiB of manifest.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
    };

    /// Within the bounds the fastcdc crate supports (it only debug-asserts them) and ordered.
    pub fn check(&self) -> Result<(), String> {
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        use fastcdc::v2020 as cdc;
        let in_bounds = (cdc::MINIMUM_MIN..=cdc::MINIMUM_MAX).contains(&min)
            && (cdc::AVERAGE_MIN..=cdc::AVERAGE_MAX).contains(&avg)
            && (cdc::MAXIMUM_MIN..=cdc::MAXIMUM_MAX).contains(&max);
        let even = min % 2 == 0 && avg % 2 == 0 && max % 2 == 0;
        if !in_bounds || !even || min > avg || avg > max {
            return Err(format!(
                "chunk sizes min {min}, avg {avg}, max {max} must be even, ordered, and within \
                 {}..={}, {}..={}, {}..={}",
                cdc::MINIMUM_MIN,
                cdc::MINIMUM_MAX,
                cdc::AVERAGE_MIN,
                cdc::AVERAGE_MAX,
                cdc::MAXIMUM_MIN,
                cdc::MAXIMUM_MAX
            ));
        }
        Ok(())
    }
}

/// One chunk of a file: where it is and what it hashes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    pub offset: u64,
    pub length: u32,
    pub sha256: Sha256Digest,
}

/// A file cut into chunks, with its whole size and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChunks {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub chunks: Vec<ChunkRef>,
}

/// Cuts what `reader` yields, handing each chunk's bytes to `each` as it goes (the bundle
/// writer stores them; the index only counts them).
pub fn chunk_stream(
    reader: impl Read,
    params: ChunkerParams,
    mut each: impl FnMut(&ChunkRef, &[u8]) -> Result<()>,
    what: &Path,
) -> Result<FileChunks> {
    params
        .check()
        .map_err(|reason| Error::malformed("the chunker parameters", reason))?;
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let cutter = fastcdc::v2020::StreamCDC::new(
        reader,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
    );
    for chunk in cutter {
        let chunk = chunk.map_err(|err| Error::Io {
            action: "read",
            path: what.to_owned(),
            source: err.into(),
        })?;
        whole.update(&chunk.data);
        let reference = ChunkRef {
            offset: chunk.offset,
            // At most `max`, which is at most 16 MiB.
            length: chunk.length as u32,
            sha256: Sha256Digest::of(&chunk.data),
        };
        each(&reference, &chunk.data)?;
        size += chunk.length as u64;
        chunks.push(reference);
    }
    Ok(FileChunks {
        size,
        sha256: Sha256Digest::from_hasher(whole),
        chunks,
    })
}

/// Cuts a whole file.
pub fn chunk_file(path: &Path, params: ChunkerParams) -> Result<FileChunks> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    chunk_stream(
        std::io::BufReader::with_capacity(1 << 20, file),
        params,
        |_, _| Ok(()),
        path,
    )
}

/// Where the box can read a chunk it already has.
#[derive(Clone, Copy, Debug)]
struct Location {
    source: usize,
    offset: u64,
    length: u32,
}

/// The chunks of the files a box already has (its running slot's root image and boot files),
/// by hash, and where to read each.
#[derive(Debug, Default)]
pub struct ChunkIndex {
    sources: Vec<Source>,
    by_hash: HashMap<Sha256Digest, Location>,
}

/// A local file, indexed: the patches of a manifest apply to one by its size and hash.
#[derive(Debug)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
    pub sha256: Sha256Digest,
}

impl ChunkIndex {
    pub fn new() -> ChunkIndex {
        ChunkIndex::default()
    }

    /// Cuts the first `length` bytes of `path` (a slot's partition holds its image and then
    /// whatever was there before), or all of it, and indexes the chunks.
    pub fn add_file(
        &mut self,
        path: &Path,
        length: Option<u64>,
        params: ChunkerParams,
    ) -> Result<FileChunks> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let chunks = match length {
            Some(length) => chunk_stream(reader.take(length), params, |_, _| Ok(()), path)?,
            None => chunk_stream(reader, params, |_, _| Ok(()), path)?,
        };
        let source = self.sources.len();
        for chunk in &chunks.chunks {
            self.by_hash.entry(chunk.sha256).or_insert(Location {
                source,
                offset: chunk.offset,
                length: chunk.length,
            });
        }
        self.sources.push(Source {
            path: path.to_owned(),
            file,
            size: chunks.size,
            sha256: chunks.sha256,
        });
        Ok(chunks)
    }

    /// The local file with exactly this size and hash, if one was indexed.
    pub(crate) fn source(&self, size: u64, sha256: &Sha256Digest) -> Option<&Source> {
        self.sources
            .iter()
            .find(|source| source.size == size && source.sha256 == *sha256)
    }

    pub fn contains(&self, sha256: &Sha256Digest) -> bool {
        self.by_hash.contains_key(sha256)
    }

    /// Distinct chunks indexed.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The chunk's bytes from the local file, checked against its hash: `None` when the chunk
    /// is not indexed, an error when the file no longer holds it.
    pub(crate) fn read(&self, chunk: &ChunkRef) -> Result<Option<Vec<u8>>> {
        let Some(location) = self.by_hash.get(&chunk.sha256) else {
            return Ok(None);
        };
        let Some(Source { path, file, .. }) = self.sources.get(location.source) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; location.length as usize];
        file.read_exact_at(&mut bytes, location.offset)
            .map_err(Error::io("read", path))?;
        let found = Sha256Digest::of(&bytes);
        if found != chunk.sha256 || location.length != chunk.length {
            return Err(Error::ChunkCorrupt {
                sha256: chunk.sha256,
                location: format!("{} at offset {}", path.display(), location.offset),
                problem: format!("the bytes there now hash to {found}"),
            });
        }
        Ok(Some(bytes))
    }
}

/// Bytes of `chunks` that `local` lacks, each distinct chunk once.
pub fn lacking_bytes(local: &ChunkIndex, chunks: &[ChunkRef]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    chunks
        .iter()
        .filter(|chunk| !local.contains(&chunk.sha256) && seen.insert(chunk.sha256))
        .map(|chunk| chunk.length as u64)
        .sum()
}

/// Bytes to download for `chunks`.
pub fn total_length(chunks: &[ChunkRef]) -> u64 {
    chunks.iter().map(|chunk| chunk.length as u64).sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic bytes that look random to the chunker (xorshift).
    pub(crate) fn noise(seed: u64, length: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    const SMALL: ChunkerParams = ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };

    fn cut(bytes: &[u8]) -> FileChunks {
        chunk_stream(bytes, SMALL, |_, _| Ok(()), Path::new("mem")).unwrap()
    }

    #[test]
    fn chunks_cover_the_file_in_order_within_the_bounds() {
        let bytes = noise(1, 300_000);
        let file = cut(&bytes);
        assert_eq!(file.size, bytes.len() as u64);
        assert_eq!(file.sha256, Sha256Digest::of(&bytes));
        let mut offset = 0u64;
        for (i, chunk) in file.chunks.iter().enumerate() {
            assert_eq!(chunk.offset, offset);
            assert!(chunk.length <= SMALL.max);
            if i + 1 < file.chunks.len() {
                assert!(chunk.length >= SMALL.min);
            }
            let range = chunk.offset as usize..(chunk.offset + chunk.length as u64) as usize;
            assert_eq!(chunk.sha256, Sha256Digest::of(&bytes[range]));
            offset += chunk.length as u64;
        }
        assert_eq!(offset, bytes.len() as u64);
        assert!(file.chunks.len() > 30, "{}", file.chunks.len());
    }

    /// The point of content-defined cuts: an insertion near the start changes the chunks
    /// around it, not every chunk after it.
    #[test]
    fn an_insertion_changes_only_the_chunks_near_it() {
        let old = noise(2, 400_000);
        let mut new = old.clone();
        new.splice(5_000..5_000, noise(3, 777));
        let old_chunks = cut(&old);
        let new_chunks = cut(&new);
        let known: std::collections::HashSet<_> =
            old_chunks.chunks.iter().map(|c| c.sha256).collect();
        let changed: Vec<_> = new_chunks
            .chunks
            .iter()
            .filter(|c| !known.contains(&c.sha256))
            .collect();
        assert!(changed.len() <= 3, "{} chunks changed", changed.len());
        let changed_bytes: u64 = changed.iter().map(|c| c.length as u64).sum();
        assert!(changed_bytes < 40_000, "{changed_bytes}");
    }

    #[test]
    fn parameters_out_of_the_chunkers_bounds_are_refused() {
        for bad in [
            ChunkerParams {
                min: 32,
                avg: 4096,
                max: 16384,
            },
            ChunkerParams {
                min: 8192,
                avg: 4096,
                max: 16384,
            },
            ChunkerParams {
                min: 1024,
                avg: 4097,
                max: 16384,
            },
            ChunkerParams {
                min: 1024,
                avg: 4096,
                max: 64 << 20,
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
            let err = chunk_stream(&b"x"[..], bad, |_, _| Ok(()), Path::new("m")).unwrap_err();
            assert!(matches!(err, Error::Malformed { .. }), "{err}");
        }
        ChunkerParams::DEFAULT.check().unwrap();
    }

    #[test]
    fn the_index_reads_a_chunk_back_and_notices_when_the_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot");
        let mut bytes = noise(4, 100_000);
        // A partition: the image, then leftovers the index must not cover.
        bytes.extend_from_slice(&noise(5, 50_000));
        std::fs::write(&path, &bytes).unwrap();
        let mut index = ChunkIndex::new();
        let file = index.add_file(&path, Some(100_000), SMALL).unwrap();
        assert_eq!(file.size, 100_000);
        assert_eq!(file.sha256, Sha256Digest::of(&bytes[..100_000]));
        let chunk = file.chunks[3];
        let read = index.read(&chunk).unwrap().unwrap();
        assert_eq!(Sha256Digest::of(&read), chunk.sha256);

        let mut changed = bytes.clone();
        changed[chunk.offset as usize] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        let err = index.read(&chunk).unwrap_err();
        assert!(matches!(err, Error::ChunkCorrupt { .. }), "{err}");
        let absent = ChunkRef {
            sha256: Sha256Digest::of(b"absent"),
            ..chunk
        };
        assert!(index.read(&absent).unwrap().is_none());
    }
}
