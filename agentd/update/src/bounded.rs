//! Reading outside input with a ceiling: every file the box fetches is read into memory only up
//! to the size a valid one can have, so a hostile server cannot make it allocate without end.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The size limits of the formats (bytes). A manifest lists every chunk of a root image: at a
/// 64 KiB average and ~150 bytes of JSON a chunk, 32 MiB covers a 12 GiB image.
pub const MAX_MANIFEST: u64 = 32 << 20;
pub const MAX_POINTER: u64 = 16 << 10;
pub const MAX_KEY_LIST: u64 = 256 << 10;
pub const MAX_SIGNATURE: u64 = 1 << 10;
pub const MAX_KEY_FILE: u64 = 1 << 10;

/// Refuses bytes already in memory that are over the limit.
pub fn check(bytes: &[u8], limit: u64, what: &str) -> Result<()> {
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_owned(),
            limit,
        });
    }
    Ok(())
}

/// Parses a JSON document of at most `limit` bytes; a document over the limit or that does
/// not parse is an error naming `what`.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: u64,
    what: &str,
) -> Result<T> {
    check(bytes, limit, what)?;
    serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e.to_string()))
}

/// The one format this software reads, or why a document in another is refused.
pub fn check_format(found: u32, expected: u32) -> std::result::Result<(), String> {
    if found == expected {
        return Ok(());
    }
    Err(format!(
        "format {found} (this software reads format {expected}); update the box through a \
         release that reads it, in steps"
    ))
}

/// Reads at most `limit` bytes of a file; more is an error, not a truncation.
pub fn read_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read", path))?;
    check(&bytes, limit, &format!("{what} {}", path.display()))?;
    Ok(bytes)
}
