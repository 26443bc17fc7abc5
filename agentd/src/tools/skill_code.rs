//! The tools a skill's code offers (its skill.toml), named `<skill>__<tool>` so that two skills
//! may both have, say, `search`; each call runs in the skill host (crate::skill_code).

use std::sync::Arc;

use carapace_llm::ToolSpec;
use carapace_skills::{Skill, ToolDeclaration};
use serde_json::Value;

use super::{Tool, ToolContext, ToolFuture};
use crate::approvals::Approval;
use crate::skill_code::SkillHost;

pub struct SkillTool {
    pub skill: Skill,
    pub tool: ToolDeclaration,
    pub host: Arc<SkillHost>,
}

/// The model's name for `tool` of `skill`.
pub fn tool_name(skill: &str, tool: &str) -> String {
    format!("{skill}__{tool}")
}

impl Tool for SkillTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: tool_name(&self.skill.name, &self.tool.name),
            description: format!(
                "(skill {}) {}",
                self.skill.name,
                self.tool.description.trim()
            ),
            parameters: self.tool.parameters.clone(),
        }
    }

    /// New powers: asked about the first time, or every time when it sends, spends or deletes.
    fn approval(&self) -> Approval {
        match self.tool.writes {
            true => Approval::EveryTime,
            false => Approval::FirstTime,
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let secrets = crate::skill_secrets::given(context.store, &self.skill)
                .map_err(|error| format!("skill {}: its secrets: {error}", self.skill.name))?;
            self.host
                .call(&self.skill, &self.tool.name, arguments, &secrets)
                .await
        })
    }
}
