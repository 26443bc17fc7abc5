//! A skill the owner sends in the chat, as a zip: unpacked into a folder named after the skill,
//! which [`check_folder`](crate::check_folder) then checks as the builder checks a recipe's.
//! The zip is outside input, so it is read warily: an entry's name is taken only as a plain
//! relative path (no `..`, no root, no backslash), links and encrypted entries are refused,
//! and sizes are counted as the bytes come out, not as the headers claim. Zipping a folder or
//! its contents both work: SKILL.md is at the top, or in the one folder everything is in.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use crate::error::Error;
use crate::skill_md;
use crate::{MAX_COMPONENT_BYTES, SKILL_FILE};

/// The most entries a skill's zip may have.
const MAX_ENTRIES: usize = 1024;
/// The most a skill's zip may unpack to: a component and the folder's other files.
pub const MAX_UNPACKED_BYTES: u64 = MAX_COMPONENT_BYTES + crate::catalog::MAX_FOLDER_BYTES;

/// One file to take out of the zip.
struct Entry {
    index: usize,
    /// Its path below the skill's folder, `/`-separated.
    inside: String,
}

/// Unpacks the zip `bytes` into `into/<skill name>/` (`into` exists; the skill's folder must
/// not) and returns the skill's name. Hidden files and macOS's `__MACOSX` are left out, as the
/// builder leaves hidden files out.
pub fn unpack(bytes: &[u8], into: &Path) -> Result<String, Error> {
    let refuse = |problem: String| Error::Archive(problem);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| refuse(format!("it is not a zip file: {err}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(refuse(format!(
            "it has {} entries; a skill's zip may have {MAX_ENTRIES}",
            zip.len()
        )));
    }
    let mut files = Vec::new();
    for index in 0..zip.len() {
        let entry = zip
            .by_index_raw(index)
            .map_err(|err| refuse(format!("entry {index} cannot be read: {err}")))?;
        let name = entry
            .name()
            .map_err(|err| refuse(format!("entry {index}'s name: {err}")))?;
        let segments = plain_path(&name)
            .ok_or_else(|| refuse(format!("{name:?} is not a path inside the skill's folder")))?;
        let left_out = segments[0] == "__MACOSX" || segments.iter().any(|s| s.starts_with('.'));
        if left_out || entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            return Err(refuse(format!(
                "{name} is a link; a skill holds plain files"
            )));
        }
        if entry.encrypted() {
            return Err(refuse(format!(
                "{name} is encrypted; send the zip without a password"
            )));
        }
        files.push(Entry {
            index,
            inside: segments.join("/"),
        });
    }
    let names: Vec<&str> = files.iter().map(|f| f.inside.as_str()).collect();
    let top = skill_folder(&names).ok_or_else(|| {
        refuse(format!(
            "it has no {SKILL_FILE} at its top or in the one folder everything is in"
        ))
    })?;
    for file in &mut files {
        file.inside = file.inside[top.len()..].to_string();
    }

    let mut budget = MAX_UNPACKED_BYTES;
    let mut read = |zip: &mut zip::ZipArchive<Cursor<&[u8]>>, entry: &Entry| {
        let mut source = zip
            .by_index(entry.index)
            .map_err(|err| refuse(format!("{} cannot be read: {err}", entry.inside)))?;
        let mut content = Vec::new();
        // Reading to the end makes the zip crate check the entry's CRC-32.
        (&mut source)
            .take(budget + 1)
            .read_to_end(&mut content)
            .map_err(|err| refuse(format!("{} cannot be read: {err}", entry.inside)))?;
        budget = budget.checked_sub(content.len() as u64).ok_or_else(|| {
            refuse(format!(
                "it unpacks to more than {MAX_UNPACKED_BYTES} bytes, more than a skill may hold"
            ))
        })?;
        Ok::<_, Error>(content)
    };

    let Some(skill_md_entry) = files.iter().find(|f| f.inside == SKILL_FILE) else {
        return Err(refuse(format!("it has no {SKILL_FILE}")));
    };
    let text = String::from_utf8(read(&mut zip, skill_md_entry)?)
        .map_err(|_| refuse(format!("its {SKILL_FILE} is not UTF-8 text")))?;
    let name = skill_md::parse(&text, None)
        .map_err(|problem| refuse(format!("its {SKILL_FILE}: {problem}")))?
        .name;
    let folder = into.join(&name);
    std::fs::create_dir(&folder).map_err(Error::io("create", &folder))?;
    let written = files.iter().try_for_each(|entry| {
        let content = match entry.inside == SKILL_FILE {
            true => text.clone().into_bytes(),
            false => read(&mut zip, entry)?,
        };
        write_new(&folder.join(&entry.inside), &content)
    });
    match written {
        Ok(()) => Ok(name),
        Err(err) => {
            let _ = std::fs::remove_dir_all(&folder);
            Err(err)
        }
    }
}

/// Writes a skill's files fetched one by one (a folder link: each a path inside the folder,
/// `/`-separated, and its bytes) into `into/<skill name>/` as `unpack` writes a zip's, with the
/// same checks and limits; the skill's name.
pub fn place(files: &[(String, Vec<u8>)], into: &Path) -> Result<String, Error> {
    let refuse = |problem: String| Error::Archive(problem);
    if files.len() > MAX_ENTRIES {
        return Err(refuse(format!(
            "it has {} files; a skill may have {MAX_ENTRIES}",
            files.len()
        )));
    }
    let mut kept = Vec::new();
    let mut total = 0u64;
    for (inside, content) in files {
        let segments = plain_path(inside).ok_or_else(|| {
            refuse(format!(
                "{inside:?} is not a path inside the skill's folder"
            ))
        })?;
        if segments.iter().any(|s| s.starts_with('.')) {
            continue;
        }
        total += content.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            return Err(refuse(format!(
                "it holds more than {MAX_UNPACKED_BYTES} bytes, more than a skill may hold"
            )));
        }
        kept.push((segments.join("/"), content));
    }
    let Some((_, skill_md)) = kept.iter().find(|(inside, _)| inside == SKILL_FILE) else {
        return Err(refuse(format!("it has no {SKILL_FILE} at its top")));
    };
    let text = std::str::from_utf8(skill_md)
        .map_err(|_| refuse(format!("its {SKILL_FILE} is not UTF-8 text")))?;
    let name = skill_md::parse(text, None)
        .map_err(|problem| refuse(format!("its {SKILL_FILE}: {problem}")))?
        .name;
    let folder = into.join(&name);
    std::fs::create_dir(&folder).map_err(Error::io("create", &folder))?;
    let written = kept
        .iter()
        .try_for_each(|(inside, content)| write_new(&folder.join(inside), content));
    match written {
        Ok(()) => Ok(name),
        Err(err) => {
            let _ = std::fs::remove_dir_all(&folder);
            Err(err)
        }
    }
}

/// Writes and syncs a file that must not exist yet: a zip naming one file twice is refused,
/// not silently overwritten.
fn write_new(path: &Path, content: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    }
    let mut file = std::fs::File::create_new(path).map_err(Error::io("create", path))?;
    file.write_all(content).map_err(Error::io("write", path))?;
    file.sync_all().map_err(Error::io("sync", path))
}

/// The `/`-separated segments of an entry's name when it is a plain relative path (a trailing
/// `/` marks a folder); None for anything else.
fn plain_path(name: &str) -> Option<Vec<&str>> {
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    let segments: Vec<&str> = trimmed.split('/').collect();
    let plain = segments.iter().all(|segment| {
        !segment.is_empty()
            && *segment != "."
            && *segment != ".."
            && !segment.contains(['\\', '\0'])
            && !(segment.len() == 2 && segment.ends_with(':'))
    });
    plain.then_some(segments)
}

/// The prefix (`""` or `"<folder>/"`) the skill's files are under: SKILL.md at the top, or
/// every file in one folder with SKILL.md in it.
fn skill_folder(files: &[&str]) -> Option<String> {
    if files.contains(&SKILL_FILE) {
        return Some(String::new());
    }
    let first = files.first()?.split('/').next()?;
    let prefix = format!("{first}/");
    let all_inside = files.iter().all(|f| f.starts_with(&prefix));
    let has_skill_md = files.contains(&format!("{prefix}{SKILL_FILE}").as_str());
    (all_inside && has_skill_md).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    const SKILL_MD: &[u8] = b"---\nname: tea\ndescription: Brew tea.\n---\nSteep.\n";

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            if name.ends_with('/') {
                writer
                    .add_directory(*name, SimpleFileOptions::default())
                    .unwrap();
                continue;
            }
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_zipped_folder_or_its_zipped_contents_unpack_into_a_folder_named_after_the_skill() {
        for zipped in [
            zip_of(&[
                ("tea-v2/", b""),
                ("tea-v2/SKILL.md", SKILL_MD),
                ("tea-v2/notes/steeping.md", b"2 minutes"),
                ("tea-v2/.DS_Store", b"junk"),
                ("__MACOSX/tea-v2/._SKILL.md", b"junk"),
            ]),
            zip_of(&[("SKILL.md", SKILL_MD), ("notes/steeping.md", b"2 minutes")]),
        ] {
            let into = tempfile::tempdir().unwrap();
            assert_eq!(unpack(&zipped, into.path()).unwrap(), "tea");
            assert_eq!(
                listing(&into.path().join("tea")),
                ["SKILL.md", "notes/steeping.md"]
            );
            assert_eq!(
                std::fs::read(into.path().join("tea/notes/steeping.md")).unwrap(),
                b"2 minutes"
            );
            crate::check_folder(&into.path().join("tea")).unwrap();
        }
    }

    #[test]
    fn what_cannot_be_a_skill_folder_is_refused_with_the_reason_and_writes_nothing_outside() {
        let cases: [(Vec<u8>, &str); 7] = [
            (b"not a zip".to_vec(), "it is not a zip file"),
            (
                zip_of(&[("SKILL.md", SKILL_MD), ("../escape.md", b"x")]),
                "\"../escape.md\" is not a path inside",
            ),
            (
                zip_of(&[("SKILL.md", SKILL_MD), ("/etc/cron.d/x", b"x")]),
                "\"/etc/cron.d/x\" is not a path inside",
            ),
            (
                zip_of(&[("SKILL.md", SKILL_MD), ("a\\..\\..\\b", b"x")]),
                "is not a path inside",
            ),
            (
                zip_of(&[("a/SKILL.md", SKILL_MD), ("b/other.md", b"x")]),
                "no SKILL.md at its top or in the one folder",
            ),
            (
                zip_of(&[("SKILL.md", b"---\nname: Tea\ndescription: d\n---\n")]),
                "its SKILL.md: its name \"Tea\"",
            ),
            (
                zip_of(&[
                    ("SKILL.md", SKILL_MD),
                    ("big.bin", &vec![0u8; MAX_UNPACKED_BYTES as usize]),
                ]),
                "unpacks to more than",
            ),
        ];
        for (zipped, reason) in cases {
            let root = tempfile::tempdir().unwrap();
            let into = root.path().join("staging");
            std::fs::create_dir(&into).unwrap();
            let err = unpack(&zipped, &into).unwrap_err().to_string();
            assert!(err.contains(reason), "{reason}: {err}");
            assert_eq!(
                listing(root.path()).len(),
                0,
                "{reason}: wrote {:?}",
                listing(root.path())
            );
        }
    }

    /// What the cargo-fuzz target (agentd/skills/fuzz) does, on stable: a good zip with bytes
    /// changed here and there is refused or unpacked, without a panic and only inside `into`.
    #[test]
    fn mutated_zips_are_refused_or_unpacked_inside_the_staging_folder() {
        let good = zip_of(&[
            ("tea/SKILL.md", SKILL_MD),
            ("tea/notes/steeping.md", b"2 minutes"),
        ]);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut unpacked, mut refused) = (0, 0);
        for round in 0..400 {
            let mut bytes = good.clone();
            for _ in 0..1 + round % 4 {
                let at = (random() % bytes.len() as u64) as usize;
                bytes[at] = random() as u8;
            }
            let root = tempfile::tempdir().unwrap();
            let into = root.path().join("staging");
            std::fs::create_dir(&into).unwrap();
            match unpack(&bytes, &into) {
                Ok(_) => unpacked += 1,
                Err(_) => refused += 1,
            }
            for path in listing(root.path()) {
                assert!(path.starts_with("staging/"), "round {round} wrote {path}");
            }
        }
        // Both outcomes happened: the mutations reached past the zip's framing.
        assert!(
            unpacked > 0 && refused > 0,
            "{unpacked} unpacked, {refused} refused"
        );
    }

    #[test]
    fn fetched_files_are_placed_as_a_zip_is_unpacked_with_the_same_refusals() {
        let staging = tempfile::tempdir().unwrap();
        let files = |extra: (&str, &[u8])| {
            vec![
                ("SKILL.md".to_string(), SKILL_MD.to_vec()),
                ("notes/steep.md".to_string(), b"2 minutes".to_vec()),
                (extra.0.to_string(), extra.1.to_vec()),
            ]
        };
        let name = place(&files((".hidden", b"x")), staging.path()).unwrap();
        assert_eq!(name, "tea");
        assert_eq!(
            listing(&staging.path().join("tea")),
            ["SKILL.md", "notes/steep.md"]
        );
        for (extra, why) in [
            ("../evil", "is not a path inside the skill's folder"),
            ("/etc/passwd", "is not a path inside the skill's folder"),
            ("notes/steep.md", "tea/notes/steep.md"),
        ] {
            let other = tempfile::tempdir().unwrap();
            let err = place(&files((extra, b"x")), other.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{extra}: {err}");
            assert!(
                !other.path().join("tea").exists(),
                "{extra}: half a skill left"
            );
        }
        let err = place(
            &files(("big", &vec![0; MAX_UNPACKED_BYTES as usize])),
            staging.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than a skill may hold"), "{err}");
        let err = place(&[("notes.md".into(), b"x".to_vec())], staging.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("it has no SKILL.md at its top"), "{err}");
    }

    #[test]
    fn a_link_in_the_zip_is_refused() {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .start_file("SKILL.md", SimpleFileOptions::default())
            .unwrap();
        writer.write_all(SKILL_MD).unwrap();
        writer
            .add_symlink("notes.md", "/etc/shadow", SimpleFileOptions::default())
            .unwrap();
        let zipped = writer.finish().unwrap().into_inner();
        let into = tempfile::tempdir().unwrap();
        let err = unpack(&zipped, into.path()).unwrap_err().to_string();
        assert!(err.contains("notes.md is a link"), "{err}");
    }
}
