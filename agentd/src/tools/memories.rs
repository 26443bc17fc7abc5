//! `memorize` and `recall`: the box's memories (memory.rs) for the model. Facts (`remember`)
//! are few, short and in every prompt; memories are many and stay in the store until a
//! recall finds them by meaning with the local embedding model.

use carapace_llm::ToolSpec;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolFuture, text_argument};
use crate::memory;

pub struct Memorize;
pub struct Recall;

impl Tool for Memorize {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memorize".into(),
            description: "Keep a note to find later by meaning with recall (where things are, \
                          dates, details). Not in the prompt, unlike remember's short facts."
                .into(),
            parameters: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let text = text_argument(arguments, "text")?;
            let kept = memory::keep(context.store, context.inference, text, context.now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(match kept.not_embedded {
                None => format!("kept as memory {}", kept.id),
                Some(error) => format!(
                    "kept as memory {}; recall finds it once the local inference engine \
                     answers ({error})",
                    kept.id
                ),
            })
        })
    }
}

impl Tool for Recall {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "recall".into(),
            description: "Search the kept notes by meaning; the closest first.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        }
    }

    fn call<'a>(&'a self, context: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let query = text_argument(arguments, "query")?;
            let found = memory::recall(context.store, context.inference, query)
                .await
                .map_err(|e| e.to_string())?;
            if found.is_empty() {
                return Ok("no kept note matches that".into());
            }
            let list: Vec<Value> = found
                .iter()
                .map(|f| {
                    // Two decimals say enough and keep the result small.
                    let similarity = (f64::from(f.similarity) * 100.0).round() / 100.0;
                    json!({"id": f.id, "text": f.memory.text, "kept_at": f.memory.at, "similarity": similarity})
                })
                .collect();
            Ok(Value::Array(list).to_string())
        })
    }
}
