//! `device_status`: the same facts as `/status`, as JSON.

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture};

pub struct DeviceStatus;

impl Tool for DeviceStatus {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "device_status".into(),
            description: "This box: version, slot, uptime, memory, temperature, network and firewall counters.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, _: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move { Ok(crate::device::status(context.identity).await.to_string()) })
    }
}
