//! A skill folder as the zip the owner sends to the box in the chat (agentd's skill_install.rs
//! unpacks and checks it): every file but hidden ones, under the skill folder's name, in a
//! fixed order with fixed times and deflated, so the same folder gives the same bytes and a
//! Python skill's component (about 18 MiB) fits Telegram's 20 MB. `carapace skill build DIR`
//! writes it beside the folder, as DIR.zip.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::error::{Error, Result};

/// Folder `dir` zipped.
pub fn zip(dir: &Path) -> Result<Vec<u8>> {
    let failed = |what: String| Error::Image(format!("zipping {}: {what}", dir.display()));
    let top = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| failed("it has no folder name".into()))?;
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(inside) = pending.pop() {
        let entries = std::fs::read_dir(dir.join(&inside)).map_err(|e| failed(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| failed(e.to_string()))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = inside.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| failed(e.to_string()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                files.push(path);
            } else {
                return Err(failed(format!("{} is not a plain file", path.display())));
            }
        }
    }
    files.sort();
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for path in files {
        let bytes = std::fs::read(dir.join(&path)).map_err(|e| failed(e.to_string()))?;
        writer
            .start_file(format!("{top}/{}", path.display()), options)
            .map_err(|e| failed(e.to_string()))?;
        writer
            .write_all(&bytes)
            .map_err(|e| failed(e.to_string()))?;
    }
    let zipped = writer.finish().map_err(|e| failed(e.to_string()))?;
    Ok(zipped.into_inner())
}

/// Writes `dir`'s zip beside it, as DIR.zip (atomically); its path.
pub fn write_beside(dir: &Path) -> Result<PathBuf> {
    let bytes = zip(dir)?;
    let out = dir.with_extension("zip");
    crate::fsutil::write_atomic(&out, &bytes)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_folder_zips_to_the_same_bytes_and_unpacks_as_a_skill() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tea");
        std::fs::create_dir_all(dir.join("notes")).unwrap();
        std::fs::write(
            dir.join("SKILL.md"),
            "---\nname: tea\ndescription: Brew tea.\n---\nRead notes/steeping.md.\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes/steeping.md"), "2 minutes\n").unwrap();
        std::fs::write(dir.join(".DS_Store"), "junk").unwrap();
        let first = zip(&dir).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(dir.join("notes/steeping.md"), "2 minutes\n").unwrap();
        assert_eq!(
            zip(&dir).unwrap(),
            first,
            "the bytes moved with the files' times"
        );

        let staging = root.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        assert_eq!(
            carapace_skills::archive::unpack(&first, &staging).unwrap(),
            "tea"
        );
        assert!(!staging.join("tea/.DS_Store").exists());
        carapace_skills::check_folder(&staging.join("tea")).unwrap();
        assert_eq!(write_beside(&dir).unwrap(), root.path().join("tea.zip"));
        assert_eq!(std::fs::read(root.path().join("tea.zip")).unwrap(), first);
    }
}
