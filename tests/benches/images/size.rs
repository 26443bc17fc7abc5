//! Image sizes: what the disk image file claims (apparent), what it really occupies on the
//! build machine's disk (allocated: both images are sparse) and what is shipped (zstd -3,
//! Carapace's `carapace.img.zst`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::{Context, Result};

#[derive(Debug, Clone, Copy)]
pub struct ImageSize {
    pub apparent_bytes: u64,
    pub allocated_bytes: u64,
    pub zstd_bytes: u64,
}

pub fn measure(image: &Path, image_zst: &Path) -> Result<ImageSize> {
    let raw =
        std::fs::metadata(image).context(|| format!("read the size of {}", image.display()))?;
    let zst = std::fs::metadata(image_zst)
        .context(|| format!("read the size of {}", image_zst.display()))?;
    Ok(ImageSize {
        apparent_bytes: raw.len(),
        // st_blocks counts 512-byte units whatever the file system's block size.
        allocated_bytes: raw.blocks() * 512,
        zstd_bytes: zst.len(),
    })
}

/// Compresses `image` to `out` exactly as `carapace build` makes carapace.img.zst (the zstd
/// crate's streaming encoder at level 3), so both sides are squeezed the same way.
pub fn compress_zstd(image: &Path, out: &Path) -> Result<()> {
    let what = || format!("compress {} to {}", image.display(), out.display());
    let partial = out.with_extension("zst.partial");
    let input = std::fs::File::open(image).context(what)?;
    let output = std::fs::File::create(&partial).context(what)?;
    let mut encoder = zstd::stream::Encoder::new(output, 3).context(what)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, input);
    std::io::copy(&mut reader, &mut encoder).context(what)?;
    encoder.finish().context(what)?;
    std::fs::rename(&partial, out).context(what)
}
