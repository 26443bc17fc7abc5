//! Just enough of the ext4 superblock to decide what /data needs: is there one, and was the
//! file system unmounted cleanly.
//!
//! ```text
//!  byte 0     1024         2048
//!  | boot     | superblock |  group descriptors ...   (backups: blocks 32768, 98304, ...
//!  | (unused) | magic @56, state @58, incompat @96      of 4096 bytes, sparse_super groups)
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::Error;

pub const SUPERBLOCK_OFFSET: u64 = 1024;
const SUPERBLOCK_SIZE: usize = 1024;
const S_MAGIC: usize = 56;
const S_STATE: usize = 58;
const S_FEATURE_INCOMPAT: usize = 96;
const EXT4_MAGIC: u16 = 0xef53;
const EXT4_VALID_FS: u16 = 0x0001;
const EXT4_ERROR_FS: u16 = 0x0002;
const EXT4_FEATURE_INCOMPAT_RECOVER: u32 = 0x0004;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// s_state bit 0: cleanly unmounted (ext4 without a journal clears it while mounted).
    pub valid_fs: bool,
    /// s_state bit 1: the kernel found errors.
    pub has_errors: bool,
    /// The journal holds transactions: the file system was not unmounted cleanly.
    pub needs_recovery: bool,
}

impl Superblock {
    pub fn clean(&self) -> bool {
        self.valid_fs && !self.has_errors && !self.needs_recovery
    }
}

/// `None` when the bytes hold no ext2/3/4 superblock.
pub fn parse_superblock(bytes: &[u8]) -> Option<Superblock> {
    let u16_at = |o: usize| Some(u16::from_le_bytes([*bytes.get(o)?, *bytes.get(o + 1)?]));
    let u32_at = |o: usize| Some(u32::from(u16_at(o)?) | u32::from(u16_at(o + 2)?) << 16);
    if u16_at(S_MAGIC)? != EXT4_MAGIC {
        return None;
    }
    let state = u16_at(S_STATE)?;
    Some(Superblock {
        valid_fs: state & EXT4_VALID_FS != 0,
        has_errors: state & EXT4_ERROR_FS != 0,
        needs_recovery: u32_at(S_FEATURE_INCOMPAT)? & EXT4_FEATURE_INCOMPAT_RECOVER != 0,
    })
}

/// Reads the primary superblock of a device; an I/O error is an error, never "no file
/// system".
pub fn read_superblock(device: &Path) -> Result<Option<Superblock>, Error> {
    let file = File::open(device).map_err(|e| Error::io("open", device, e))?;
    let mut bytes = vec![0u8; SUPERBLOCK_SIZE];
    file.read_exact_at(&mut bytes, SUPERBLOCK_OFFSET)
        .map_err(|e| Error::io("read the superblock of", device, e))?;
    Ok(parse_superblock(&bytes))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn superblock(state: u16, incompat: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; SUPERBLOCK_SIZE];
        bytes[S_MAGIC..S_MAGIC + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        bytes[S_STATE..S_STATE + 2].copy_from_slice(&state.to_le_bytes());
        bytes[S_FEATURE_INCOMPAT..S_FEATURE_INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
        bytes
    }

    #[test]
    fn clean_means_valid_without_errors_and_nothing_to_recover() {
        let extents_and_64bit = 0x40 | 0x80;
        assert!(
            parse_superblock(&superblock(1, extents_and_64bit))
                .expect("ext4")
                .clean()
        );
        let crashed = parse_superblock(&superblock(1, extents_and_64bit | 0x4)).expect("ext4");
        assert!(crashed.needs_recovery && !crashed.clean());
        let unchecked = parse_superblock(&superblock(0, extents_and_64bit)).expect("ext4");
        assert!(!unchecked.valid_fs && !unchecked.clean());
        let errors = parse_superblock(&superblock(3, extents_and_64bit)).expect("ext4");
        assert!(errors.has_errors && !errors.clean());
    }

    #[test]
    fn no_magic_is_no_file_system() {
        assert_eq!(parse_superblock(&[0u8; SUPERBLOCK_SIZE]), None);
        assert_eq!(parse_superblock(&[0u8; 10]), None);
    }

    #[test]
    fn reads_the_superblock_at_byte_1024_and_a_short_device_is_an_error() {
        let mut image = tempfile::NamedTempFile::new().expect("temp");
        image.write_all(&[0u8; 1024]).expect("pad");
        image.write_all(&superblock(1, 0x4)).expect("superblock");
        let found = read_superblock(image.path()).expect("read").expect("ext4");
        assert!(found.needs_recovery);

        let short = tempfile::NamedTempFile::new().expect("temp");
        assert!(
            read_superblock(short.path()).is_err(),
            "a read error is not a blank disk"
        );
    }
}
