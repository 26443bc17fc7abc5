//! `read_skill`: a skill's instructions (its SKILL.md after the front matter) or one of its
//! files, read when the model decides to use it; only names and descriptions are in the
//! prompt (carapace_skills). Present only on a box with skills.

use std::sync::Arc;

use carapace_llm::ToolSpec;
use carapace_skills::Catalog;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture};

pub const READ_SKILL: &str = "read_skill";

pub struct ReadSkill(pub Arc<Catalog>);

impl Tool for ReadSkill {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: READ_SKILL.into(),
            description: "A skill's instructions, or a file they name (`file`).".into(),
            parameters: json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "file": {"type": "string"}},
                "required": ["name"],
            }),
        }
    }

    fn call<'a>(&'a self, _: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let name = arguments
                .get("name")
                .and_then(Value::as_str)
                .ok_or("read_skill needs the skill's name")?;
            let file = arguments.get("file").and_then(Value::as_str);
            self.0.read(name, file).map_err(|err| err.to_string())
        })
    }
}
