//! How much a box downloads for an update: the chunks of the new files that the old files lack,
//! and with patches (each file by the cheaper of its lacking chunks and a patch from its old
//! version), against the whole new files. The measure behind the "an agentd-only update is a
//! few per cent of the image" goal (`carapace update-size`).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::chunking::{ChunkIndex, ChunkRef, ChunkerParams, chunk_file, chunk_stream};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaReport {
    /// The new files whole: what a full-image update downloads.
    pub full_bytes: u64,
    /// The distinct new chunks the old files do not have.
    pub download_bytes: u64,
    pub chunks: usize,
    pub download_chunks: usize,
    /// The chunk list's JSON, which the manifest carries on top of the chunks.
    pub index_bytes: u64,
    /// With patches: each file's lacking chunks or its patch, whichever is smaller, and the
    /// chunk lists of the patches taken.
    pub patched_bytes: u64,
    pub patched_files: usize,
}

impl DeltaReport {
    /// Download (chunks and their list) as a share of the full files, in per cent.
    pub fn percent(&self) -> f64 {
        percent(self.download_bytes + self.index_bytes, self.full_bytes)
    }

    /// The same with patches.
    pub fn patched_percent(&self) -> f64 {
        percent(self.patched_bytes + self.index_bytes, self.full_bytes)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    100.0 * part as f64 / whole as f64
}

fn index_json(chunks: &[ChunkRef]) -> u64 {
    serde_json::to_vec(chunks).map_or(0, |v| v.len() as u64)
}

/// `old` and `new` list the same files in the same order (root image, then boot files): each
/// new file is patched from the old file at its place.
pub fn measure(old: &[PathBuf], new: &[PathBuf], params: ChunkerParams) -> Result<DeltaReport> {
    let mut index = ChunkIndex::new();
    for path in old {
        index.add_file(path, None, params)?;
    }
    let mut report = DeltaReport {
        full_bytes: 0,
        download_bytes: 0,
        chunks: 0,
        download_chunks: 0,
        index_bytes: 0,
        patched_bytes: 0,
        patched_files: 0,
    };
    let mut fetched = HashSet::new();
    for (i, path) in new.iter().enumerate() {
        let file = chunk_file(path, params)?;
        report.full_bytes += file.size;
        report.chunks += file.chunks.len();
        report.index_bytes += index_json(&file.chunks);
        let mut lacking = 0;
        for chunk in &file.chunks {
            if !index.contains(&chunk.sha256) && fetched.insert(chunk.sha256) {
                report.download_chunks += 1;
                lacking += chunk.length as u64;
            }
        }
        report.download_bytes += lacking;
        let patch = match old.get(i) {
            Some(from) if lacking > 0 => Some(crate::patch::make(from, path)?),
            _ => None,
        };
        match patch.filter(|bytes| (bytes.len() as u64) < lacking) {
            Some(bytes) => {
                let cut = chunk_stream(&bytes[..], params, |_, _| Ok(()), path)?;
                report.patched_bytes += cut.size + index_json(&cut.chunks);
                report.patched_files += 1;
            }
            None => report.patched_bytes += lacking,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::tests::noise;

    #[test]
    fn a_change_in_one_file_costs_about_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        // An image-like file: three "programs" one after another.
        let (a, b, c) = (noise(1, 3 << 20), noise(2, 1 << 20), noise(3, 4 << 20));
        std::fs::write(path("old"), [&a[..], &b, &c].concat()).unwrap();
        // The middle program is rebuilt (new bytes, a different length).
        let b2 = noise(4, (1 << 20) + 12_345);
        std::fs::write(path("new"), [&a[..], &b2, &c].concat()).unwrap();

        let report = measure(&[path("old")], &[path("new")], ChunkerParams::DEFAULT).unwrap();
        assert_eq!(report.full_bytes, (8 << 20) + 12_345);
        let b2_len = b2.len() as u64;
        assert!(report.download_bytes >= b2_len, "{report:?}");
        // The changed program plus at most a few chunks of its neighbours.
        assert!(
            report.download_bytes < b2_len + 4 * u64::from(ChunkerParams::DEFAULT.max),
            "{report:?}"
        );
        assert!(report.percent() < 20.0, "{}", report.percent());

        // New random bytes: a patch saves only the unchanged neighbours the chunks carry.
        assert!(report.patched_bytes >= b2_len, "{report:?}");
        assert!(report.patched_bytes <= report.download_bytes, "{report:?}");

        // A rebuilt program: a byte changed every 40 KB of it. Every chunk of it changes; its
        // patch is a few KB.
        let mut b3 = b.clone();
        for at in (0..b3.len()).step_by(40_000) {
            b3[at] ^= 0x5a;
        }
        std::fs::write(path("rebuilt"), [&a[..], &b3, &c].concat()).unwrap();
        let rebuilt = measure(&[path("old")], &[path("rebuilt")], ChunkerParams::DEFAULT).unwrap();
        assert!(rebuilt.download_bytes >= 1 << 20, "{rebuilt:?}");
        assert_eq!(rebuilt.patched_files, 1);
        assert!(rebuilt.patched_bytes < 20_000, "{rebuilt:?}");
        assert!(
            rebuilt.patched_percent() < 1.0,
            "{}",
            rebuilt.patched_percent()
        );

        let same = measure(&[path("old")], &[path("old")], ChunkerParams::DEFAULT).unwrap();
        assert_eq!(same.download_bytes, 0);
        assert_eq!(same.patched_bytes, 0);
    }
}
