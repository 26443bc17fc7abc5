//! `carapace update-size`: what a box running the old files downloads to get the new ones
//! (chunks, and chunks or patches), side by side with downloading the new files whole (raw, and zstd -3 as a full-image update
//! would ship them). Each side is files, or build slot directories (out/<recipe>/slot), whose
//! root image and boot files are taken.

use std::path::{Path, PathBuf};

use carapace_update::{ChunkerParams, DeltaReport};

use crate::error::{IoContext, Result};
use crate::slot_files;

pub struct SizeReport {
    pub delta: DeltaReport,
    pub full_zstd_bytes: u64,
}

pub fn measure(old: &[PathBuf], new: &[PathBuf], params: ChunkerParams) -> Result<SizeReport> {
    let old = expand(old);
    let new = expand(new);
    let delta = carapace_update::measure(&old, &new, params)?;
    let mut full_zstd_bytes = 0;
    for path in &new {
        full_zstd_bytes += zstd_size(path)?;
    }
    Ok(SizeReport {
        delta,
        full_zstd_bytes,
    })
}

/// A slot directory stands for its root image and boot files.
fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .flat_map(|path| {
            if path.is_dir() {
                std::iter::once(slot_files::ROOT_IMAGE)
                    .chain(slot_files::BOOT_FILES)
                    .map(|name| path.join(name))
                    .collect()
            } else {
                vec![path.clone()]
            }
        })
        .collect()
}

fn zstd_size(path: &Path) -> Result<u64> {
    let ctx = || format!("compress {}", path.display());
    let file = std::fs::File::open(path).context(ctx)?;
    let mut counter = ByteCounter(0);
    let mut encoder = zstd::stream::Encoder::new(&mut counter, 3).context(ctx)?;
    std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 20, file),
        &mut encoder,
    )
    .context(ctx)?;
    encoder.finish().context(ctx)?;
    Ok(counter.0)
}

struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0 += buffer.len() as u64;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The table `carapace update-size` prints.
pub fn render(report: &SizeReport) -> String {
    let d = &report.delta;
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let share = |bytes: u64| 100.0 * bytes as f64 / d.full_bytes.max(1) as f64;
    let delta_bytes = d.download_bytes + d.index_bytes;
    let patched_bytes = d.patched_bytes + d.index_bytes;
    format!(
        "download                            MiB   of the full image\n\
         full image, raw              {:>10.2}   100.0 %\n\
         full image, zstd -3          {:>10.2}   {:>5.1} %\n\
         delta: chunks + chunk list   {:>10.2}   {:>5.1} %   ({} of {} chunks, list {:.0} KiB)\n\
         delta with patches           {:>10.2}   {:>5.1} %   ({} of the files by a patch)\n",
        mib(d.full_bytes),
        mib(report.full_zstd_bytes),
        share(report.full_zstd_bytes),
        mib(delta_bytes),
        share(delta_bytes),
        d.download_chunks,
        d.chunks,
        d.index_bytes as f64 / 1024.0,
        mib(patched_bytes),
        share(patched_bytes),
        d.patched_files,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_directory_stands_for_its_files_and_the_table_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let slot = dir.path().join("slot");
        std::fs::create_dir(&slot).unwrap();
        // Two bits of noise a byte: zstd squeezes it, and the chunker finds cuts in it.
        let letters = |seed: u64, len: usize| -> Vec<u8> {
            let mut state = seed | 1;
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'a' + (state & 3) as u8
                })
                .collect()
        };
        let old = letters(1, 2_000_000);
        std::fs::write(slot.join("root.img"), &old).unwrap();
        std::fs::write(slot.join("vmlinuz"), b"kernel").unwrap();
        std::fs::write(slot.join("initrd"), b"initrd").unwrap();
        let mut new = old.clone();
        new[1_000_000..1_050_000].copy_from_slice(&letters(2, 50_000));
        let new_root = dir.path().join("new-root.img");
        std::fs::write(&new_root, &new).unwrap();

        let report = measure(
            std::slice::from_ref(&slot),
            &[new_root],
            ChunkerParams::DEFAULT,
        )
        .unwrap();
        assert_eq!(report.delta.full_bytes, 2_000_000);
        assert!(report.delta.download_bytes >= 50_000);
        assert!(report.delta.download_bytes < 50_000 + 3 * 262_144);
        let zstd = report.full_zstd_bytes;
        assert!(zstd > 0 && zstd < 1_000_000, "{zstd}");
        let table = render(&report);
        assert!(table.contains("100.0 %"), "{table}");
        assert!(table.contains("delta"), "{table}");
        // 50 KB of new bytes in a root of letters: the patch beats the chunks around them.
        assert_eq!(report.delta.patched_files, 1);
        assert!(report.delta.patched_bytes < report.delta.download_bytes);
        assert!(table.contains("(1 of the files by a patch)"), "{table}");
    }
}
