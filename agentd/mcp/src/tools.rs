//! The tools a server lists, checked one by one: a tool with a name the LLM APIs would refuse,
//! a name already taken, or no input schema is left out with the reason, and the rest stay
//! usable.

use serde_json::Value;

use crate::trim::cut;

/// One tool as the server described it (untrimmed).
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    /// Empty when the server gave none.
    pub description: String,
    /// The JSON Schema of the arguments object.
    pub input_schema: Value,
    /// The server says the tool only reads (its `readOnlyHint` annotation). Without the hint a
    /// tool may change things, as MCP's defaults say.
    pub read_only: bool,
}

/// A tool that was not taken, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// As the server gave it, cut for display; `(no name)` for an entry without one.
    pub name: String,
    pub reason: String,
}

/// What `tools/list` gave, all pages together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolList {
    pub tools: Vec<Tool>,
    pub left_out: Vec<LeftOut>,
}

/// The longest name shown for a tool that was left out.
const MOST_SHOWN_NAME_CHARS: usize = 80;

/// `^[a-zA-Z0-9_-]{1,64}$`: what the OpenAI and Anthropic APIs take as a tool name.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolList {
    /// Takes one entry of a `tools/list` page, or notes why not.
    pub(crate) fn take(&mut self, entry: &Value) {
        let name = entry.get("name").and_then(Value::as_str);
        let shown = name.map_or_else(
            || "(no name)".to_owned(),
            |name| cut(name, MOST_SHOWN_NAME_CHARS),
        );
        match self.check(name, entry) {
            Ok(tool) => self.tools.push(tool),
            Err(reason) => self.left_out.push(LeftOut {
                name: shown,
                reason: reason.into(),
            }),
        }
    }

    fn check(&self, name: Option<&str>, entry: &Value) -> Result<Tool, &'static str> {
        let name = name.ok_or("it has no name")?;
        if !valid_tool_name(name) {
            return Err("its name is not 1 to 64 letters, digits, _ and -");
        }
        if self.tools.iter().any(|tool| tool.name == name) {
            return Err("another tool of the server has the same name");
        }
        let input_schema = entry
            .get("inputSchema")
            .filter(|schema| schema.is_object())
            .ok_or("it has no inputSchema object")?;
        Ok(Tool {
            name: name.to_owned(),
            description: entry
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            input_schema: input_schema.clone(),
            read_only: entry
                .pointer("/annotations/readOnlyHint")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_llm_apis_take() {
        for good in ["add", "lookup_order", "get-weather", "A1", &"x".repeat(64)] {
            assert!(valid_tool_name(good), "{good}");
        }
        for bad in ["", "bad name", "dot.ted", "ünï", "a/b", &"x".repeat(65)] {
            assert!(!valid_tool_name(bad), "{bad}");
        }
    }

    #[test]
    fn bad_entries_are_left_out_with_their_reason() {
        let schema = json!({"type": "object"});
        let mut list = ToolList::default();
        for entry in [
            json!({"name": "add", "inputSchema": schema, "annotations": {"readOnlyHint": true}}),
            json!({"name": "add", "inputSchema": schema}),
            json!({"name": "bad name!", "inputSchema": schema}),
            json!({"name": "no_schema"}),
            json!({"inputSchema": schema}),
            json!({"name": "x".repeat(200), "inputSchema": schema}),
        ] {
            list.take(&entry);
        }
        assert_eq!(list.tools.len(), 1);
        assert_eq!(list.tools[0].description, "");
        assert!(list.tools[0].read_only);
        let reasons: Vec<(&str, &str)> = list
            .left_out
            .iter()
            .map(|left| (left.name.as_str(), left.reason.as_str()))
            .collect();
        assert_eq!(
            reasons[0],
            ("add", "another tool of the server has the same name")
        );
        assert_eq!(reasons[1].0, "bad name!");
        assert_eq!(reasons[2], ("no_schema", "it has no inputSchema object"));
        assert_eq!(reasons[3], ("(no name)", "it has no name"));
        assert_eq!(reasons[4].0.chars().count(), MOST_SHOWN_NAME_CHARS);
        assert!(reasons[4].0.ends_with('…'));
    }
}
