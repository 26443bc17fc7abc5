//! `remember` and `forget`: facts the owner asks the agent to keep. They go into every
//! system prompt (so keep them short) and survive reboots and updates.

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture, number_argument, text_argument};

/// The longest fact kept; the prompt budget is small.
const FACT_MAX_CHARS: usize = 300;

pub struct Remember;
pub struct Forget;

impl Tool for Remember {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "remember".into(),
            description: "Keep a short fact the owner asked you to remember.".into(),
            parameters: json!({"type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let fact = text_argument(arguments, "fact")?;
            if fact.chars().count() > FACT_MAX_CHARS {
                return Err(format!("a fact has at most {FACT_MAX_CHARS} characters"));
            }
            let id = context
                .store
                .add_fact(fact.trim())
                .map_err(|e| e.to_string())?;
            Ok(format!("kept as fact {id}"))
        })
    }
}

impl Tool for Forget {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "forget".into(),
            description: "Drop a kept fact by its number.".into(),
            parameters: json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let id = number_argument(arguments, "id")?;
            match context.store.remove_fact(id).map_err(|e| e.to_string())? {
                true => Ok(format!("fact {id} forgotten")),
                false => Err(format!("there is no fact {id}")),
            }
        })
    }
}
