//! Reminders and scheduled messages: kept in the store, delivered by the agent's clock task
//! even after a reboot (a reminder due while the box was off is sent when it is back).

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture, number_argument, text_argument};
use crate::store::Reminder;

/// How far ahead a reminder may be set: a year.
const MAX_AHEAD_SECS: u64 = 366 * 24 * 3600;

pub struct SetReminder;
pub struct ListReminders;
pub struct CancelReminder;

impl Tool for SetReminder {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "set_reminder".into(),
            description: "Send the owner a message later, in this chat.".into(),
            parameters: json!({"type": "object", "properties": {
                "in_seconds": {"type": "integer", "description": "delay from now"},
                "text": {"type": "string"}
            }, "required": ["in_seconds", "text"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let delay = number_argument(arguments, "in_seconds")?;
            if delay > MAX_AHEAD_SECS {
                return Err("a reminder can be at most a year ahead".into());
            }
            let text = text_argument(arguments, "text")?;
            let reminder = Reminder {
                due: context.now + delay,
                channel: context.channel,
                chat: context.chat.into(),
                text: text.into(),
            };
            let id = context
                .store
                .add_reminder(&reminder)
                .map_err(|e| e.to_string())?;
            Ok(format!("reminder {id} set for {delay} s from now"))
        })
    }
}

impl Tool for ListReminders {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_reminders".into(),
            description: "The reminders not yet sent.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, _: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let all = context.store.reminders().map_err(|e| e.to_string())?;
            let list: Vec<Value> = all
                .iter()
                .map(|(id, r)| json!({"id": id, "in_seconds": r.due.saturating_sub(context.now), "text": r.text}))
                .collect();
            Ok(Value::Array(list).to_string())
        })
    }
}

impl Tool for CancelReminder {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "cancel_reminder".into(),
            description: "Cancel a reminder by its id.".into(),
            parameters: json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let id = number_argument(arguments, "id")?;
            match context
                .store
                .remove_reminder(id)
                .map_err(|e| e.to_string())?
            {
                true => Ok(format!("reminder {id} cancelled")),
                false => Err(format!("there is no reminder {id}")),
            }
        })
    }
}
