//! The image `carapace flash` writes: a raw disk image (carapace.img) or its zstd stream
//! (carapace.img.zst, as a release is downloaded). Either must start with a GPT whose backup
//! header ends the image, which gives the length of a stream before it is read, and catches
//! a truncated download or a file that is not a disk image at all.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const SECTOR: u64 = 512;
/// The protective MBR and the GPT header: enough to know the image's length.
const HEAD: usize = 2 * SECTOR as usize;

pub struct Source {
    /// The image's length once decompressed.
    pub length: u64,
    pub compressed: bool,
    pub reader: Box<dyn Read + Send>,
}

pub fn open(path: &Path) -> Result<Source, String> {
    let what = |e: String| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(|e| what(format!("cannot open it: {e}")))?;
    let mut magic = [0u8; 4];
    let compressed = file.read_exact(&mut magic).is_ok() && magic == ZSTD_MAGIC;
    let file = File::open(path).map_err(|e| what(format!("cannot open it: {e}")))?;
    let mut reader: Box<dyn Read + Send> = if compressed {
        Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| what(format!("not a zstd stream: {e}")))?,
        )
    } else {
        Box::new(file)
    };
    let mut head = vec![0u8; HEAD];
    reader
        .read_exact(&mut head)
        .map_err(|e| what(format!("too short for a disk image: {e}")))?;
    let length = gpt_length(&head).map_err(what)?;
    if !compressed {
        let on_disk = std::fs::metadata(path)
            .map_err(|e| what(e.to_string()))?
            .len();
        if on_disk != length {
            return Err(what(format!(
                "{on_disk} bytes, but its GPT says the image is {length}: a truncated or \
                 damaged copy; download or build it again"
            )));
        }
    }
    Ok(Source {
        length,
        compressed,
        reader: Box::new(Cursor::new(head).chain(reader)),
    })
}

/// The image length its primary GPT header gives: the backup header is the last sector.
fn gpt_length(head: &[u8]) -> Result<u64, String> {
    let header = &head[SECTOR as usize..];
    if &header[..8] != b"EFI PART" {
        return Err(
            "not a Carapace disk image (no GPT at sector 1); flash carapace.img or \
                    carapace.img.zst from out/<recipe>/ or a release"
                .into(),
        );
    }
    let backup_lba = u64::from_le_bytes(header[32..40].try_into().unwrap_or_default());
    backup_lba
        .checked_add(1)
        .and_then(|sectors| sectors.checked_mul(SECTOR))
        .filter(|&length| length > 34 * SECTOR)
        .ok_or_else(|| {
            format!("its GPT header names backup sector {backup_lba}, which is not possible")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with_backup_at(lba: u64) -> Vec<u8> {
        let mut head = vec![0u8; HEAD];
        head[512..520].copy_from_slice(b"EFI PART");
        head[544..552].copy_from_slice(&lba.to_le_bytes());
        head
    }

    #[test]
    fn the_length_is_where_the_backup_header_ends() {
        assert_eq!(gpt_length(&head_with_backup_at(2047)), Ok(2048 * 512));
        assert!(gpt_length(&head_with_backup_at(u64::MAX)).is_err());
        let why = gpt_length(&[0u8; HEAD]).unwrap_err();
        assert!(why.starts_with("not a Carapace disk image"), "{why}");
    }

    #[test]
    fn a_raw_image_shorter_than_its_gpt_says_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.img");
        let mut bytes = head_with_backup_at(2047);
        bytes.resize(1000 * 512, 0);
        std::fs::write(&path, &bytes).unwrap();
        let why = open(&path).err().unwrap();
        assert!(
            why.ends_with("512000 bytes, but its GPT says the image is 1048576: a truncated or damaged copy; download or build it again"),
            "{why}"
        );
    }

    #[test]
    fn a_zstd_image_reads_back_whole_with_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.img.zst");
        let mut bytes = head_with_backup_at(2047);
        bytes.resize(2048 * 512, 7);
        std::fs::write(&path, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
        let mut source = open(&path).unwrap();
        assert!(source.compressed);
        assert_eq!(source.length, 2048 * 512);
        let mut back = Vec::new();
        source.reader.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes);
    }
}
