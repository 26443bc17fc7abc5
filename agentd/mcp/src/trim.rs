//! A server's tools made small enough for the prompt: every tool's spec (name, description,
//! parameters) goes to the model on every turn, and MCP servers write long descriptions and
//! schemas for human readers. Descriptions are cut, schema keywords no model needs
//! (`$schema`, `$comment`, `title`, `examples`) are removed at every level, and descriptions
//! inside the schema are cut too, or dropped when the tool would not fit with them. Tools are
//! taken in the server's order while they fit the byte budget; the rest are left out.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::tools::Tool;

/// One tool as the model sees it (agentd keeps these with the server's address).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// The trimmed input schema.
    pub parameters: Value,
    /// Only reads (the server's `readOnlyHint`); absent in servers kept before it was read.
    #[serde(default)]
    pub read_only: bool,
}

/// How much of the prompt one server's tools may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// All specs of the server together, as compact JSON.
    pub bytes: usize,
    /// The most characters of a tool's description.
    pub description_chars: usize,
    /// The most characters of each description inside the schema (a property's, say).
    pub schema_description_chars: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            bytes: 8 << 10,
            description_chars: 300,
            schema_description_chars: 80,
        }
    }
}

/// The specs that fit, and the names of the tools that did not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trimmed {
    pub specs: Vec<ToolSpec>,
    pub left_out: Vec<String>,
}

/// `tools` as specs within `budget` (their [`spec_bytes`] add up to at most `budget.bytes`).
pub fn trim(tools: &[Tool], budget: &Budget) -> Trimmed {
    let mut trimmed = Trimmed::default();
    let mut used = 0;
    for tool in tools {
        let description = cut(&tool.description, budget.description_chars);
        // With cut schema descriptions first; without any if that does not fit.
        let fitting = [Some(budget.schema_description_chars), None]
            .into_iter()
            .map(|keep| ToolSpec {
                name: tool.name.clone(),
                description: description.clone(),
                parameters: compact_schema(&tool.input_schema, keep),
                read_only: tool.read_only,
            })
            .map(|spec| (spec_bytes(&spec), spec))
            .find(|(bytes, _)| used + bytes <= budget.bytes);
        match fitting {
            Some((bytes, spec)) => {
                used += bytes;
                trimmed.specs.push(spec);
            }
            None => trimmed.left_out.push(tool.name.clone()),
        }
    }
    trimmed
}

/// The size of what the model gets of a spec as compact JSON, which is what the budget counts.
pub fn spec_bytes(spec: &ToolSpec) -> usize {
    let seen = serde_json::json!({
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
    });
    serde_json::to_vec(&seen).map_or(usize::MAX, |json| json.len())
}

/// `schema` without the keywords a model needs not, its descriptions cut to `keep` characters
/// (or all dropped with None).
fn compact_schema(schema: &Value, keep: Option<usize>) -> Value {
    let mut schema = schema.clone();
    clean(&mut schema, keep);
    schema
}

fn clean(schema: &mut Value, keep: Option<usize>) {
    let Value::Object(map) = schema else {
        return;
    };
    for keyword in ["$schema", "$comment", "title", "examples"] {
        map.remove(keyword);
    }
    cut_description(map, keep);
    for (keyword, value) in map.iter_mut() {
        match keyword.as_str() {
            // Maps from names (which may well be "title") to schemas.
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(named) = value {
                    named.values_mut().for_each(|sub| clean(sub, keep));
                }
            }
            // A schema, or an array of them.
            "items"
            | "prefixItems"
            | "additionalItems"
            | "additionalProperties"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "anyOf"
            | "oneOf"
            | "allOf" => match value {
                Value::Array(subs) => subs.iter_mut().for_each(|sub| clean(sub, keep)),
                sub => clean(sub, keep),
            },
            _ => {}
        }
    }
}

fn cut_description(map: &mut Map<String, Value>, keep: Option<usize>) {
    let cut_text = match (map.get("description"), keep) {
        (Some(Value::String(text)), Some(chars)) => cut(text, chars),
        _ => String::new(),
    };
    if cut_text.is_empty() {
        map.remove("description");
    } else {
        map.insert("description".into(), Value::String(cut_text));
    }
}

/// `text` in at most `chars` characters, ending in "…" when it was cut.
pub(crate) fn cut(text: &str, chars: usize) -> String {
    if text.char_indices().nth(chars).is_none() {
        return text.to_owned();
    }
    if chars == 0 {
        return String::new();
    }
    let end = text.char_indices().nth(chars - 1).map_or(0, |(at, _)| at);
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str, input_schema: Value) -> Tool {
        Tool {
            name: name.into(),
            description: description.into(),
            input_schema,
            read_only: false,
        }
    }

    #[test]
    fn cut_counts_characters_and_marks_the_cut() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("exactly", 7), "exactly");
        assert_eq!(cut("héllo wörld", 7), "héllo…");
        assert_eq!(cut("日本語のテキスト", 3), "日本…");
        assert_eq!(cut("anything", 0), "");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn schema_noise_goes_at_every_level_but_property_names_stay() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Args",
            "type": "object",
            "properties": {
                "title": {"type": "string", "title": "Title", "description": "The book's title, as printed on its cover", "examples": ["Dune"]},
                "tags": {"type": "array", "items": {"type": "string", "$comment": "lower-case"}},
                "when": {"anyOf": [{"type": "string", "title": "Date"}, {"type": "null"}]}
            },
            "$defs": {"x": {"title": "X", "type": "integer"}},
            "required": ["title"]
        });
        let expected = json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "The book's…"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "when": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "$defs": {"x": {"type": "integer"}},
            "required": ["title"]
        });
        assert_eq!(compact_schema(&schema, Some(11)), expected);
        let dropped = compact_schema(&schema, None);
        assert!(dropped["properties"]["title"].get("description").is_none());
    }

    #[test]
    fn tools_fit_the_budget_or_are_left_out() {
        let described = json!({"type": "object", "properties": {
            "id": {"type": "string", "description": "x".repeat(200)}
        }});
        let tools = [
            tool("first", &"a".repeat(1000), described.clone()),
            tool("second", "b", described.clone()),
            tool("third", "c", json!({"type": "object"})),
        ];
        // 273 bytes for the first with its property's description, 154 without; the second
        // 223 and 104; the third 65.
        let budget = Budget {
            bytes: 450,
            description_chars: 50,
            schema_description_chars: 100,
        };
        let trimmed = trim(&tools, &budget);
        let total: usize = trimmed.specs.iter().map(spec_bytes).sum();
        assert_eq!(total, 273 + 104 + 65);
        assert_eq!(trimmed.specs[0].description.chars().count(), 50);
        // The first fits with its property's description cut to 100 characters...
        let first = &trimmed.specs[0].parameters["properties"]["id"]["description"];
        assert_eq!(first.as_str().map(|d| d.chars().count()), Some(100));
        // ...the second only without it, and the third still fits after it.
        let second = &trimmed.specs[1].parameters["properties"]["id"];
        assert!(second.get("description").is_none());
        assert_eq!(trimmed.specs[2].name, "third");
        assert!(trimmed.left_out.is_empty());
        let tight = trim(
            &tools,
            &Budget {
                bytes: 170,
                ..budget
            },
        );
        assert_eq!(tight.specs.len(), 1);
        assert_eq!(spec_bytes(&tight.specs[0]), 154);
        assert_eq!(tight.left_out, ["second", "third"]);
        assert_eq!(
            trim(
                &tools,
                &Budget {
                    bytes: 10,
                    ..budget
                }
            )
            .left_out
            .len(),
            3
        );
    }
}
