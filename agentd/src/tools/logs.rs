//! `recent_logs`: the box's last log lines, for questions like "why did it restart?".

use std::path::Path;

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture};

const DEFAULT_LINES: usize = 30;
const MAX_LINES: usize = 100;
/// Log lines go into the model's context: keep them within the per-turn budget.
const MAX_BYTES: usize = 4000;

pub struct RecentLogs;

impl Tool for RecentLogs {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "recent_logs".into(),
            description: "The box's last log lines (kernel, init, services).".into(),
            parameters: json!({"type": "object", "properties": {"lines": {"type": "integer"}}}),
        }
    }

    fn call<'a>(&'a self, _: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let lines = arguments
                .get("lines")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_LINES, |n| (n as usize).clamp(1, MAX_LINES));
            crate::logs::recent(Path::new(crate::logs::RECENT_SOCKET), lines, MAX_BYTES).await
        })
    }
}
