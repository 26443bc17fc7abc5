//! `/tools`: the tools the owner decides about (skills' code; approvals.rs) and the policy of
//! each; `/tools NAME always|never|ask|ask-first` sets one (owner only).

use crate::agent::Agent;
use crate::approvals::{self, Approval, Policy};
use crate::error::Error;

pub fn tools(agent: &mut Agent, owner: bool, args: &[String], now: u64) -> Result<String, Error> {
    let tools = agent.tools.needing_approval();
    if let [name, choice] = args {
        if !owner {
            return Ok("Only the owner can do that.".into());
        }
        if !tools.iter().any(|(tool, _)| tool == name) {
            return Ok(format!(
                "There is no tool {name} to decide about; /tools lists them."
            ));
        }
        let policy = match choice.as_str() {
            "always" => Policy::Always,
            "never" => Policy::Never,
            "ask" => Policy::AskEveryTime,
            "ask-first" => Policy::AskFirstTime,
            _ => return Ok(format!("{choice}? Say always, never, ask or ask-first.")),
        };
        approvals::set_policy(&agent.store, name, policy)?;
        agent.record(
            "approval",
            &format!("the owner set {name} to {}", policy.name()),
            now,
        );
        return Ok(format!("{name}: {}.", policy.name()));
    }
    if tools.is_empty() {
        return Ok("No tool here needs your approval: the box's own tools always run.".into());
    }
    let mut text = String::from("Tools that run only as you allow:");
    for (name, approval) in &tools {
        let policy = approvals::policy(&agent.store, name, *approval)?;
        let writes = match approval {
            Approval::EveryTime => " (it sends, spends or deletes)",
            _ => "",
        };
        text.push_str(&format!("\n{name}: {}{writes}", policy.name()));
    }
    text.push_str("\nChange one: /tools NAME always|never|ask|ask-first");
    Ok(text)
}
