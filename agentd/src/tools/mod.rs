//! The tools the model may call. Each is a [`Tool`] with a JSON schema; the [`Registry`] holds
//! them in a fixed order (so the prompt is the same bytes every turn) and is the one place a
//! new tool is added: the local-inference tools of a later issue register here and nothing
//! else changes.

mod device;
mod facts;
mod logs;
mod memories;
mod reboot;
mod reminders;
mod skill_code;
mod skills;

pub use skill_code::tool_name as skill_tool_name;

use std::future::Future;
use std::pin::Pin;

use carapace_im::ChannelKind;
use carapace_llm::ToolSpec;
use serde_json::Value;

use crate::approvals::{self, Approval, Decision};
use crate::local_inference::LocalInference;
use crate::store::Store;

/// What a tool may touch while it runs.
pub struct ToolContext<'a> {
    pub store: &'a Store,
    pub channel: ChannelKind,
    pub chat: &'a str,
    /// Seconds since 1970.
    pub now: u64,
    /// The device's public key, as `/status` shows it.
    pub identity: &'a str,
    /// The local inference engine, for memories.
    pub inference: &'a LocalInference,
    /// Calls of this turn that wait for the owner's approval.
    pub asked: &'a crate::approvals::Asked,
}

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// Whether the owner must allow it (approvals.rs): the box's own tools need not.
    fn approval(&self) -> Approval {
        Approval::NotNeeded
    }
    /// Runs the call; `Err` is a message for the model (bad arguments, nothing found).
    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a>;
}

pub struct Registry {
    tools: Vec<Box<dyn Tool>>,
}

impl Registry {
    /// The tools every box has.
    pub fn standard() -> Registry {
        let mut registry = Registry { tools: Vec::new() };
        registry.add(Box::new(device::DeviceStatus));
        registry.add(Box::new(logs::RecentLogs));
        registry.add(Box::new(reminders::SetReminder));
        registry.add(Box::new(reminders::ListReminders));
        registry.add(Box::new(reminders::CancelReminder));
        registry.add(Box::new(facts::Remember));
        registry.add(Box::new(facts::Forget));
        registry.add(Box::new(memories::Memorize));
        registry.add(Box::new(memories::Recall));
        registry.add(Box::new(reboot::Reboot));
        registry
    }

    /// Adds `read_skill`, when the box has skills, and the tools of skills with code, run by
    /// `host` (none when the image has no skill host).
    pub fn add_skills(
        &mut self,
        skills: &std::sync::Arc<carapace_skills::Catalog>,
        host: Option<&std::sync::Arc<crate::skill_code::SkillHost>>,
    ) {
        if !skills.is_empty() {
            self.add(Box::new(skills::ReadSkill(std::sync::Arc::clone(skills))));
        }
        let Some(host) = host else {
            return;
        };
        for skill in skills.skills() {
            for tool in skill.code.iter().flat_map(|code| &code.tools) {
                self.add(Box::new(skill_code::SkillTool {
                    skill: skill.clone(),
                    tool: tool.clone(),
                    host: std::sync::Arc::clone(host),
                }));
            }
        }
    }

    /// Drops what [`Registry::add_skills`] added for `skills`.
    pub fn remove_skills(&mut self, skills: &carapace_skills::Catalog) {
        let skill_tool = |name: &str| {
            name == skills::READ_SKILL
                || skills.skills().iter().any(|skill| {
                    skill
                        .code
                        .iter()
                        .flat_map(|code| &code.tools)
                        .any(|tool| name == skill_code::tool_name(&skill.name, &tool.name))
                })
        };
        self.tools.retain(|tool| !skill_tool(&tool.spec().name));
    }

    pub fn add(&mut self, tool: Box<dyn Tool>) {
        self.tools.push(tool);
    }

    /// Drops the tools whose names start with `prefix` (a removed MCP server's).
    pub fn remove_prefixed(&mut self, prefix: &str) {
        self.tools
            .retain(|tool| !tool.spec().name.starts_with(prefix));
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|tool| tool.spec()).collect()
    }

    /// Runs the model's call, if the owner's policy for the tool lets it run now.
    pub async fn call(
        &self,
        context: &ToolContext<'_>,
        name: &str,
        arguments: &Value,
    ) -> Result<String, String> {
        let Some(tool) = self.find(name) else {
            return Err(format!("there is no tool named {name:?}"));
        };
        let decision = approvals::check(
            context.store,
            context.asked,
            context.channel,
            context.chat,
            name,
            tool.approval(),
            arguments,
        );
        match decision {
            Ok(Decision::Run) => tool.call(context, arguments).await,
            Ok(Decision::NotRun(told)) => Err(told),
            Err(error) => Err(format!("Not run: {error}")),
        }
    }

    /// Runs a call the owner allowed.
    pub async fn call_approved(
        &self,
        context: &ToolContext<'_>,
        name: &str,
        arguments: &Value,
    ) -> Result<String, String> {
        match self.find(name) {
            Some(tool) => tool.call(context, arguments).await,
            None => Err(format!("there is no tool named {name:?} any more")),
        }
    }

    /// The tools the owner decides about, with what each needs.
    pub fn needing_approval(&self) -> Vec<(String, Approval)> {
        self.tools
            .iter()
            .filter(|tool| tool.approval() != Approval::NotNeeded)
            .map(|tool| (tool.spec().name, tool.approval()))
            .collect()
    }

    fn find(&self, name: &str) -> Option<&dyn Tool> {
        self.tools
            .iter()
            .find(|tool| tool.spec().name == name)
            .map(|tool| tool.as_ref())
    }
}

/// A required string argument.
fn text_argument<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, String> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| format!("the argument {name:?} (a non-empty string) is missing"))
}

/// A required whole-number argument.
fn number_argument(arguments: &Value, name: &str) -> Result<u64, String> {
    arguments
        .get(name)
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .ok_or_else(|| format!("the argument {name:?} (a whole number) is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_unique_name_and_an_object_schema() {
        let specs = Registry::standard().specs();
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), specs.len());
        for spec in &specs {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        }
        // Tool schemas are part of every request: keep them small.
        let bytes = serde_json::to_vec(&specs).unwrap().len();
        assert!(bytes < 3000, "tool schemas take {bytes} bytes");
    }
}
