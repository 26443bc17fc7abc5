//! The sha256 check that stands between a file on disk and its use: a wheel is read only after
//! its bytes hash to the value models.lock pins.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The sha256 of the file at `path`, as lowercase hex. Reads in 1 MiB pieces: the wheels are
/// tens of megabytes and the box's memory is small.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(Error::io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|error| Error::io("reading", path)(error))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Ok when the file at `path` hashes to `expected`; otherwise an error naming the file and
/// both hashes. The file is left as it is: a mismatch is evidence, not litter.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Sha256Mismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256("abc"), from FIPS 180-2's example.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn sha256_file_matches_the_published_digest_of_abc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), ABC);
        verify_sha256(&path, ABC).unwrap();
    }

    #[test]
    fn a_mismatch_names_the_file_and_both_hashes_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abd");
        std::fs::write(&path, b"abd").unwrap();
        let error = verify_sha256(&path, ABC).unwrap_err();
        let message = error.to_string();
        match error {
            Error::Sha256Mismatch {
                path: named,
                expected,
                actual,
            } => {
                assert_eq!(named, path);
                assert_eq!(expected, ABC);
                assert_eq!(actual, sha256_file(&path).unwrap());
                assert!(message.contains(&path.display().to_string()), "{message}");
                assert!(
                    message.contains(ABC) && message.contains(&actual),
                    "{message}"
                );
            }
            other => panic!("expected Sha256Mismatch, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"abd");
    }
}
