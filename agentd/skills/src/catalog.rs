//! The skills on the box ([`Catalog`]: loaded at start, read on demand) and the builder's check
//! of a skill folder ([`check_folder`]).

use std::path::{Component, Path, PathBuf};

use crate::SKILL_FILE;
use crate::declaration::{COMPONENT_FILE, DECLARATION_FILE, Declaration, MAX_COMPONENT_BYTES};
use crate::error::Error;
use crate::skill_md::{self, SkillMd};

/// A skill folder, all files but its component together, at most: skills are instructions,
/// not data sets.
pub(crate) const MAX_FOLDER_BYTES: u64 = 1024 * 1024;
/// The most of one file the model gets in one answer.
const MAX_FILE_ANSWER_BYTES: usize = 32 * 1024;
/// Files that are code by their extension: they run only as a built component.
const CODE_EXTENSIONS: &[&str] = &[
    "py", "sh", "bash", "zsh", "js", "mjs", "cjs", "ts", "rb", "pl", "php", "ps1", "exe", "wasm",
    "so", "bin",
];

/// One skill on the box: what the prompt lists, and where the rest is.
#[derive(Clone, Debug, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    dir: PathBuf,
    /// What its code offers, when it has code (skill.toml beside a built skill.wasm).
    pub code: Option<Declaration>,
    pub origin: Origin,
    /// The signed pack it came as, if it did (checked when it came: pack.rs).
    pub pack: Option<crate::pack::PackLabel>,
}

/// Where a skill came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The recipe's, built into the image.
    Image,
    /// Sent by the owner in the chat and installed on /data.
    Owner,
}

impl Skill {
    /// Its component, when it has code.
    pub fn component(&self) -> Option<PathBuf> {
        self.code.as_ref().map(|_| self.dir.join(COMPONENT_FILE))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    skills: Vec<Skill>,
}

impl Catalog {
    /// Every skill folder under `dir`, the image's.
    pub fn load(dir: &Path) -> (Catalog, Vec<Error>) {
        Catalog::load_all(&[(dir, Origin::Image)])
    }

    /// Every skill folder under each of `dirs` (none where one does not exist); a folder that
    /// is not a skill, or names a skill an earlier folder has, is left out and said in the
    /// problems.
    pub fn load_all(dirs: &[(&Path, Origin)]) -> (Catalog, Vec<Error>) {
        let mut catalog = Catalog::default();
        let mut problems = Vec::new();
        for &(dir, origin) in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut found = Vec::new();
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let loaded =
                    read_skill_md(&path).and_then(|skill| Ok((skill, Declaration::load(&path)?)));
                match loaded {
                    Ok((skill, _)) if catalog.get(&skill.name).is_some() => {
                        problems.push(Error::Folder {
                            skill: skill.name,
                            problem: format!("{} names a skill the image has", path.display()),
                        });
                    }
                    Ok((skill, code)) => found.push(Skill {
                        name: skill.name,
                        description: skill.description,
                        pack: crate::pack::label(&path),
                        dir: path,
                        code,
                        origin,
                    }),
                    Err(err) => problems.push(err),
                }
            }
            catalog.skills.extend(found);
        }
        catalog.skills.sort_by(|a, b| a.name.cmp(&b.name));
        (catalog, problems)
    }

    pub fn get(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }

    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
    }

    /// The prompt's list of skills, one `- name: description` line each, in at most `budget`
    /// bytes: a description is cut to fit, and skills that do not fit at all are counted.
    pub fn prompt_section(&self, budget: usize) -> String {
        let mut section = String::from(
            "Skills (instructions you may follow; read one with read_skill before you use it):",
        );
        for (shown, skill) in self.skills.iter().enumerate() {
            let line = format!("\n- {}: {}", skill.name, skill.description);
            let left = self.skills.len() - shown;
            let reserve = format!("\n({left} more skills not listed)").len();
            if section.len() + line.len() + reserve <= budget {
                section.push_str(&line);
                continue;
            }
            let room = budget.saturating_sub(section.len() + reserve);
            let cut = floor_char_boundary(&line, room.saturating_sub(3));
            if cut > skill.name.len() + 4 {
                section.push_str(&line[..cut]);
                section.push_str("...");
                if left > 1 {
                    section.push_str(&format!("\n({} more skills not listed)", left - 1));
                }
            } else {
                section.push_str(&format!("\n({left} more skills not listed)"));
            }
            break;
        }
        section
    }

    /// Skill `name`'s instructions (SKILL.md after its front matter), or its file `file` (a
    /// path inside its folder), as text for the model.
    pub fn read(&self, name: &str, file: Option<&str>) -> Result<String, Error> {
        let skill = self.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            Error::Request(format!(
                "there is no skill named {name:?}; the skills are: {}",
                names.join(", ")
            ))
        })?;
        let Some(file) = file.filter(|f| !f.is_empty() && *f != SKILL_FILE) else {
            return read_skill_md(&skill.dir).map(|skill| skill.body);
        };
        let relative = Path::new(file);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::Request(format!(
                "{file:?} is not a path inside skill {name}'s folder"
            )));
        }
        let path = skill.dir.join(relative);
        let metadata = std::fs::symlink_metadata(&path)
            .map_err(|_| Error::Request(format!("skill {name} has no file {file:?}")))?;
        if !metadata.is_file() {
            return Err(Error::Request(format!(
                "{file:?} in skill {name} is not a file"
            )));
        }
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Request(format!("{file:?} in skill {name} is not text")))?;
        if text.len() <= MAX_FILE_ANSWER_BYTES {
            return Ok(text);
        }
        let cut = floor_char_boundary(&text, MAX_FILE_ANSWER_BYTES);
        Ok(format!(
            "{}\n[{} more bytes of {file} not shown]",
            &text[..cut],
            text.len() - cut
        ))
    }
}

/// The builder's check of skill folder `dir`: a SKILL.md that parses and names the folder, no
/// programs it needs on the host, at most 1 MiB besides its component; code only as a
/// component built by `carapace skill build` with the skill.toml that declares what it offers.
/// Returns it and every file to copy (path inside the folder with `/`, where it is): hidden
/// files and the code's sources left out.
pub fn check_folder(dir: &Path) -> Result<(SkillMd, Vec<(String, PathBuf)>), Error> {
    let skill = read_skill_md(dir)?;
    let refuse = |problem: String| Error::Folder {
        skill: skill.name.clone(),
        problem,
    };
    if !skill.required_programs.is_empty() {
        return Err(refuse(format!(
            "it needs {} on the host; a Carapace box runs no programs for skills: its code must \
             be Python or JavaScript built into a WebAssembly component (carapace skill build)",
            skill.required_programs.join(", ")
        )));
    }
    let declared = Declaration::load(dir)?.is_some();
    let component = dir.join(COMPONENT_FILE);
    let built = component.is_file();
    match (declared, built) {
        (true, false) => {
            return Err(refuse(format!(
                "it declares tools in {DECLARATION_FILE} but has no {COMPONENT_FILE}: run \
                 `carapace skill build {}`",
                dir.display()
            )));
        }
        (false, true) => {
            return Err(refuse(format!(
                "it has a {COMPONENT_FILE} but no {DECLARATION_FILE} saying what it offers"
            )));
        }
        _ => {}
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(Error::io("read", &folder))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &folder))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(Error::io("look at", &path))?;
            let inside = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let size = entry.metadata().map_err(Error::io("look at", &path))?.len();
            if kind.is_dir() {
                pending.push(path);
            } else if !kind.is_file() {
                return Err(refuse(format!("{inside} is not a plain file or folder")));
            } else if inside == COMPONENT_FILE {
                if size > MAX_COMPONENT_BYTES {
                    return Err(refuse(format!(
                        "its {COMPONENT_FILE} has {size} bytes; a component may have {MAX_COMPONENT_BYTES}"
                    )));
                }
                files.push((inside, path));
            } else if is_code(Path::new(&inside)) {
                if !declared {
                    return Err(refuse(format!(
                        "{inside} is code; a skill's code runs only as a WebAssembly component: \
                         declare its tools in {DECLARATION_FILE} and run `carapace skill build`"
                    )));
                }
                // Built into the component; the box does not need the source.
            } else {
                total += size;
                files.push((inside, path));
            }
        }
    }
    if total > MAX_FOLDER_BYTES {
        return Err(refuse(format!(
            "its files hold {total} bytes; a skill may hold {MAX_FOLDER_BYTES}"
        )));
    }
    files.sort();
    Ok((skill, files))
}

fn read_skill_md(dir: &Path) -> Result<SkillMd, Error> {
    let path = dir.join(SKILL_FILE);
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
    skill_md::parse(&text, Some(&folder)).map_err(|problem| Error::SkillMd { path, problem })
}

/// `path` is inside the skill's folder.
fn is_code(path: &Path) -> bool {
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| CODE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    let in_scripts = path.components().any(|c| c.as_os_str() == "scripts");
    by_extension || in_scripts
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(root: &Path, name: &str, description: &str, body: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(SKILL_FILE),
            format!("---\nname: {name}\ndescription: {description}\n---\n{body}"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_catalog_lists_skills_and_reads_their_instructions_and_files() {
        let root = tempfile::tempdir().unwrap();
        let tea = skill(root.path(), "tea", "Brew tea well.", "Read steeping.md.\n");
        std::fs::write(tea.join("steeping.md"), "Green: 2 minutes at 80 C.\n").unwrap();
        skill(root.path(), "bread", "Bake bread.", "Knead.\n");
        std::fs::create_dir(root.path().join("broken")).unwrap();
        std::fs::write(root.path().join("broken/SKILL.md"), "no front matter").unwrap();

        let (catalog, problems) = Catalog::load(root.path());
        let names: Vec<&str> = catalog.skills().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bread", "tea"]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].to_string().contains("broken/SKILL.md"),
            "{}",
            problems[0]
        );

        assert_eq!(catalog.read("tea", None).unwrap(), "Read steeping.md.\n");
        assert_eq!(
            catalog.read("tea", Some("steeping.md")).unwrap(),
            "Green: 2 minutes at 80 C.\n"
        );
        for (name, file, reason) in [
            (
                "coffee",
                None,
                "no skill named \"coffee\"; the skills are: bread, tea",
            ),
            ("tea", Some("../bread/SKILL.md"), "not a path inside"),
            ("tea", Some("/etc/passwd"), "not a path inside"),
            ("tea", Some("missing.md"), "has no file"),
        ] {
            let err = catalog.read(name, file).unwrap_err().to_string();
            assert!(err.contains(reason), "{name} {file:?}: {err}");
        }
        assert!(Catalog::load(&root.path().join("none")).0.is_empty());
    }

    #[test]
    fn the_prompt_section_keeps_to_its_budget() {
        let root = tempfile::tempdir().unwrap();
        for i in 0..20 {
            skill(
                root.path(),
                &format!("skill-{i:02}"),
                &"word ".repeat(40),
                "x\n",
            );
        }
        let (catalog, _) = Catalog::load(root.path());
        let section = catalog.prompt_section(1000);
        assert!(section.len() <= 1000, "{}", section.len());
        assert!(section.contains("- skill-00: word"), "{section}");
        assert!(section.ends_with("more skills not listed)"), "{section}");
        let all = catalog.prompt_section(100_000);
        assert_eq!(all.matches("\n- ").count(), 20);
    }

    #[test]
    fn the_builder_takes_instruction_only_skills_and_says_why_it_refuses_others() {
        let root = tempfile::tempdir().unwrap();
        let tea = skill(root.path(), "tea", "Brew tea.", "Read notes/steeping.md.\n");
        std::fs::create_dir(tea.join("notes")).unwrap();
        std::fs::write(tea.join("notes/steeping.md"), "2 minutes\n").unwrap();
        std::fs::write(tea.join(".DS_Store"), "junk").unwrap();
        let (parsed, files) = check_folder(&tea).unwrap();
        assert_eq!(parsed.name, "tea");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["SKILL.md", "notes/steeping.md"]);
        // Only the skill's own scripts/ folder is code, not one the recipe happens to live in.
        let nested = skill(&root.path().join("scripts"), "nested", "Fine.", "x\n");
        assert!(check_folder(&nested).is_ok());

        let coded = skill(root.path(), "coded", "Has code.", "Run scripts/go.\n");
        std::fs::create_dir(coded.join("scripts")).unwrap();
        std::fs::write(coded.join("scripts/go"), "#!/bin/sh\n").unwrap();
        let err = check_folder(&coded).unwrap_err().to_string();
        assert!(err.contains("scripts/go is code"), "{err}");

        let python = skill(root.path(), "python", "Has code.", "Run it.\n");
        std::fs::write(python.join("fetch.py"), "print(1)\n").unwrap();
        let err = check_folder(&python).unwrap_err().to_string();
        assert!(err.contains("fetch.py is code"), "{err}");

        let gh = root.path().join("gh");
        std::fs::create_dir(&gh).unwrap();
        std::fs::write(
            gh.join(SKILL_FILE),
            "---\nname: gh\ndescription: GitHub.\nmetadata: {\"openclaw\": {\"requires\": {\"bins\": [\"gh\"]}}}\n---\nUse gh.\n",
        )
        .unwrap();
        let err = check_folder(&gh).unwrap_err().to_string();
        assert!(err.contains("it needs gh on the host"), "{err}");

        let big = skill(root.path(), "big", "Big.", "x\n");
        std::fs::write(big.join("data.txt"), vec![b'a'; 1024 * 1024 + 1]).unwrap();
        let err = check_folder(&big).unwrap_err().to_string();
        assert!(err.contains("a skill may hold"), "{err}");
    }

    #[test]
    fn a_skill_with_code_needs_its_declaration_and_built_component() {
        let root = tempfile::tempdir().unwrap();
        let weather = skill(root.path(), "weather", "Forecasts.", "Call forecast.\n");
        std::fs::create_dir(weather.join("scripts")).unwrap();
        std::fs::write(weather.join("scripts/tools.py"), "def forecast(): pass\n").unwrap();
        std::fs::write(
            weather.join(DECLARATION_FILE),
            "hosts = [\"api.example.org\"]\n[[tool]]\nname = \"forecast\"\ndescription = \"d\"\n",
        )
        .unwrap();
        let err = check_folder(&weather).unwrap_err().to_string();
        assert!(
            err.contains("has no skill.wasm: run `carapace skill build"),
            "{err}"
        );
        std::fs::write(weather.join(COMPONENT_FILE), b"\0asm").unwrap();
        let (_, files) = check_folder(&weather).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["SKILL.md", "skill.toml", "skill.wasm"]);

        let (catalog, problems) = Catalog::load(root.path());
        assert!(problems.is_empty(), "{problems:?}");
        let loaded = &catalog.skills()[0];
        assert_eq!(loaded.code.as_ref().unwrap().hosts, ["api.example.org"]);
        assert_eq!(loaded.component().unwrap(), weather.join(COMPONENT_FILE));

        std::fs::remove_file(weather.join(DECLARATION_FILE)).unwrap();
        let err = check_folder(&weather).unwrap_err().to_string();
        assert!(err.contains("has a skill.wasm but no skill.toml"), "{err}");
    }
}
