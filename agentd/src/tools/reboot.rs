//! `reboot`: the model may propose a restart, never do one. The owner confirms with
//! `/reboot confirm`, as after the `/reboot` command.

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture};
use crate::commands::{REBOOT_ASKED_AT, REBOOT_CONFIRM_SECS};

pub struct Reboot;

impl Tool for Reboot {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "reboot".into(),
            description: "Propose restarting the box; the owner must confirm.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, _: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            context
                .store
                .put_count(REBOOT_ASKED_AT, context.now)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "Not restarted yet: tell the owner to send /reboot confirm within {REBOOT_CONFIRM_SECS} s."
            ))
        })
    }
}
