//! How much a box downloads for an update: the chunks of the new files that the old files lack,
//! against the whole new files. The measure behind the "an agentd-only update is a few per cent
//! of the image" goal (`carapace update-size`).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::chunking::{ChunkIndex, ChunkerParams, chunk_file};
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
}

impl DeltaReport {
    /// Download (chunks and their list) as a share of the full files, in per cent.
    pub fn percent(&self) -> f64 {
        if self.full_bytes == 0 {
            return 0.0;
        }
        100.0 * (self.download_bytes + self.index_bytes) as f64 / self.full_bytes as f64
    }
}

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
    };
    let mut fetched = HashSet::new();
    for path in new {
        let file = chunk_file(path, params)?;
        report.full_bytes += file.size;
        report.chunks += file.chunks.len();
        report.index_bytes += serde_json::to_vec(&file.chunks).map_or(0, |v| v.len() as u64);
        for chunk in &file.chunks {
            if !index.contains(&chunk.sha256) && fetched.insert(chunk.sha256) {
                report.download_chunks += 1;
                report.download_bytes += chunk.length as u64;
            }
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

        let same = measure(&[path("old")], &[path("old")], ChunkerParams::DEFAULT).unwrap();
        assert_eq!(same.download_bytes, 0);
    }
}
