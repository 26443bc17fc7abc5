//! `carapace skill pack DIR --version V --key SECRET`: a built skill as a signed pack, one zip
//! (OUT/<name>-<version>.zip) that the owner sends to a box in the chat or a recipe lists as
//! `[[skill_pack]]`. Only the files the box takes (carapace_skills::check_folder: not the
//! scripts that `carapace skill build` compiled) go into it, beside the signed manifest
//! (carapace_skills::pack).

use std::path::{Path, PathBuf};

use carapace_update::SecretKey;

use crate::error::{Error, Result};

/// Packs the skill folder `dir` as `version`, signed with `key`, into `out`; the zip's path.
pub fn make(dir: &Path, version: &str, key: &SecretKey, out: &Path) -> Result<PathBuf> {
    let (skill, files) = carapace_skills::check_folder(dir).map_err(Error::SkillPack)?;
    let scratch =
        tempfile::tempdir().map_err(|e| Error::Image(format!("a scratch folder: {e}")))?;
    let copy = scratch.path().join(&skill.name);
    for (inside, from) in files
        .iter()
        .filter(|(inside, _)| !carapace_skills::pack::own_file(inside))
    {
        let to = copy.join(inside);
        let copied = std::fs::create_dir_all(to.parent().unwrap_or(&copy))
            .and_then(|()| std::fs::copy(from, &to));
        copied.map_err(|e| Error::Image(format!("copying {}: {e}", from.display())))?;
    }
    carapace_skills::pack::sign(&copy, version, key).map_err(Error::SkillPack)?;
    let bytes = crate::skill_zip::zip(&copy)?;
    let zipped = out.join(format!("{}-{version}.zip", skill.name));
    crate::fsutil::write_atomic(&zipped, &bytes)?;
    Ok(zipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapace_update::{KeyKind, Trust};

    #[test]
    fn a_pack_holds_what_the_box_takes_and_verifies_once_unpacked() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("weather");
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        std::fs::write(
            dir.join("SKILL.md"),
            "---\nname: weather\ndescription: Forecasts.\n---\nCall forecast.\n",
        )
        .unwrap();
        std::fs::write(dir.join("scripts/tools.py"), "def forecast(): pass\n").unwrap();
        std::fs::write(
            dir.join("skill.toml"),
            "hosts = [\"api.example.org\"]\n[[tool]]\nname = \"forecast\"\ndescription = \"d\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("skill.wasm"), b"\0asm").unwrap();
        let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
        let trust =
            Trust::of_keys(&SecretKey::from_seed(KeyKind::Root, &[1; 32]), &[&signing]).unwrap();

        let zipped = make(&dir, "2.0.1", &signing, root.path()).unwrap();
        assert_eq!(zipped, root.path().join("weather-2.0.1.zip"));
        assert!(
            !dir.join("pack.json").exists(),
            "the source folder was written to"
        );
        let staging = root.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let bytes = std::fs::read(&zipped).unwrap();
        assert_eq!(
            carapace_skills::archive::unpack(&bytes, &staging).unwrap(),
            "weather"
        );
        let unpacked = staging.join("weather");
        let mut names: Vec<String> = std::fs::read_dir(&unpacked)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "SKILL.md",
                "pack.json",
                "pack.sig",
                "skill.toml",
                "skill.wasm"
            ]
        );
        let verified = carapace_skills::pack::verify(&unpacked, &trust, 0).unwrap();
        assert_eq!(verified.version, "2.0.1");
        assert_eq!(verified.signed_by, signing.id());
        // The same folder packs to the same bytes.
        std::fs::remove_file(&zipped).unwrap();
        make(&dir, "2.0.1", &signing, root.path()).unwrap();
        assert_eq!(std::fs::read(&zipped).unwrap(), bytes);
        let why = make(&dir, "2 0", &signing, root.path())
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("version \"2 0\": use 1 to 64 letters"),
            "{why}"
        );
    }
}
