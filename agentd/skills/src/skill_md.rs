//! SKILL.md: `---`, YAML front matter, `---`, then the instructions in Markdown. The rules for
//! the two fields every skill has are Agent Skills' (agentskills.io specification): `name` is 1
//! to 64 lower-case letters, digits and single hyphens, not at either end, and the folder's
//! name; `description` is 1 to 1024 characters. Other fields are kept out of the way; of them
//! only OpenClaw's `metadata.openclaw.requires` is read, because a skill that needs programs on
//! the host cannot work on a box that has none.

use serde::Deserialize;

/// Longest SKILL.md taken: its instructions go to the model whole when it asks.
pub const MAX_SKILL_MD_BYTES: usize = 64 * 1024;
const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkillMd {
    pub name: String,
    pub description: String,
    /// The instructions: everything after the front matter.
    pub body: String,
    /// Programs the skill says it runs on the host (OpenClaw's `requires.bins`, `anyBins`).
    pub required_programs: Vec<String>,
}

#[derive(Deserialize)]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Parses SKILL.md's `text` for the skill in folder `folder` (None: a zip's, whose folder is
/// named after the skill once unpacked); `Err` says what is wrong.
pub fn parse(text: &str, folder: Option<&str>) -> Result<SkillMd, String> {
    if text.len() > MAX_SKILL_MD_BYTES {
        return Err(format!(
            "{} bytes; a SKILL.md may have {MAX_SKILL_MD_BYTES} at most (move details into files beside it)",
            text.len()
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("it does not start with a `---` line and YAML front matter")?;
    let (yaml, body) =
        split_front_matter(rest).ok_or("its front matter has no closing `---` line")?;
    let front: FrontMatter = serde_saphyr::from_str(yaml)
        .map_err(|err| format!("its front matter is not YAML this reads: {err}"))?;
    let name = front.name.ok_or("its front matter has no `name`")?;
    check_name(&name, folder)?;
    let description = front
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .ok_or("its front matter has no `description`")?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "its description is longer than {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(SkillMd {
        name,
        description,
        body: body.trim_start_matches(['\r', '\n']).to_owned(),
        required_programs: required_programs(front.metadata.as_ref()),
    })
}

/// (front matter, body) around the first line that is exactly `---`.
fn split_front_matter(rest: &str) -> Option<(&str, &str)> {
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&rest[..at], &rest[at + line.len()..]));
        }
        at += line.len();
    }
    None
}

fn check_name(name: &str, folder: Option<&str>) -> Result<(), String> {
    let well_formed = (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !well_formed {
        return Err(format!(
            "its name {name:?} is not 1 to {MAX_NAME_CHARS} lower-case letters, digits and single hyphens"
        ));
    }
    match folder {
        Some(folder) if folder != name => Err(format!(
            "its name {name:?} is not its folder's name {folder:?}; rename one"
        )),
        _ => Ok(()),
    }
}

/// OpenClaw's `metadata: {"openclaw": {"requires": {"bins": [...], "anyBins": [...]}}}` (also
/// under its older name, `clawdbot`).
fn required_programs(metadata: Option<&serde_json::Value>) -> Vec<String> {
    let Some(metadata) = metadata else {
        return Vec::new();
    };
    let mut programs = Vec::new();
    for vendor in ["openclaw", "clawdbot"] {
        let requires = &metadata[vendor]["requires"];
        for list in ["bins", "anyBins"] {
            if let Some(names) = requires[list].as_array() {
                programs.extend(names.iter().filter_map(|n| n.as_str()).map(str::to_owned));
            }
        }
    }
    programs.sort();
    programs.dedup();
    programs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_skills_skill_md_parses() {
        let text = "---\nname: pdf-forms\ndescription: >\n  Fill in PDF forms. Use when the user\n  sends a form.\nlicense: Apache-2.0\nallowed-tools: Read\n---\n\n# PDF forms\n\nRead forms.md first.\n";
        let skill = parse(text, Some("pdf-forms")).unwrap();
        assert_eq!(skill.name, "pdf-forms");
        assert_eq!(
            skill.description,
            "Fill in PDF forms. Use when the user sends a form."
        );
        assert_eq!(skill.body, "# PDF forms\n\nRead forms.md first.\n");
        assert!(skill.required_programs.is_empty());
    }

    #[test]
    fn openclaws_metadata_says_which_programs_a_skill_needs() {
        let text = "---\nname: github\ndescription: \"Use gh for issues.\"\nmetadata: {\"openclaw\": {\"emoji\": \"x\", \"requires\": {\"bins\": [\"gh\"], \"anyBins\": [\"git\", \"gh\"]}}}\n---\nRun `gh issue list`.\n";
        let skill = parse(text, Some("github")).unwrap();
        assert_eq!(skill.required_programs, ["gh", "git"]);
    }

    #[test]
    fn what_is_not_a_skill_md_is_refused_with_the_reason() {
        let cases = [
            ("# no front matter\n", "weather", "does not start with"),
            ("---\nname: weather\n", "weather", "no closing"),
            ("---\nname: [weather\n---\n", "weather", "not YAML"),
            ("---\ndescription: d\n---\n", "weather", "no `name`"),
            ("---\nname: weather\n---\n", "weather", "no `description`"),
            (
                "---\nname: Weather\ndescription: d\n---\n",
                "Weather",
                "lower-case",
            ),
            (
                "---\nname: we--ather\ndescription: d\n---\n",
                "we--ather",
                "single hyphens",
            ),
            (
                "---\nname: weather\ndescription: d\n---\n",
                "forecast",
                "folder's name",
            ),
        ];
        for (text, folder, reason) in cases {
            let err = parse(text, Some(folder)).unwrap_err();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
        let long = format!("---\nname: w\ndescription: {}\n---\n", "x".repeat(1025));
        assert!(
            parse(&long, Some("w"))
                .unwrap_err()
                .contains("longer than 1024")
        );
    }
}
