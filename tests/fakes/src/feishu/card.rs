//! The buttons of an `interactive` message's card, and the checks the fake makes on them.
//!
//! Buttons are found wherever they sit (card JSON 1.0 puts them in an `action` element's
//! `actions`, 2.0 anywhere in `body.elements`). A button's value is its `value` (1.0) or the
//! value of a `callback` behaviour (2.0). A button that neither carries a value nor opens a
//! link can never answer: the fake refuses the card, so a client that sends such a button
//! fails its tests. That the real server refuses it too is an assumption; a card that is not
//! JSON it does refuse (230099, "parse card json err").

use serde_json::Value;

/// What the real server answers for a card it cannot build: HTTP 400, code 230099, the cause
/// in `msg` after `ext=` (the sub-code 200621 is what Feishu gives for unparseable card
/// JSON; the fake uses it for every refusal).
pub(super) const REFUSED_CODE: i64 = 230_099;

pub(super) fn refusal(cause: &str) -> String {
    format!(
        "Failed to create card content, ext=ErrCode: 200621; ErrMsg: parse card json err, please check whether the card json is correct; ErrorValue: {cause};"
    )
}

/// The card's buttons as (label, data), or why the server refuses the card.
pub(super) fn buttons(card: &Value) -> Result<Vec<(String, String)>, String> {
    if !card.is_object() {
        return Err("the card is not a JSON object".into());
    }
    let mut found = Vec::new();
    collect(card, &mut found)?;
    Ok(found)
}

fn collect(node: &Value, found: &mut Vec<(String, String)>) -> Result<(), String> {
    match node {
        Value::Object(fields) if fields.get("tag").and_then(Value::as_str) == Some("button") => {
            found.push(button(node)?);
        }
        Value::Object(fields) => {
            for child in fields.values() {
                collect(child, found)?;
            }
        }
        Value::Array(items) => {
            for child in items {
                collect(child, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn button(button: &Value) -> Result<(String, String), String> {
    let label = button["text"]["content"]
        .as_str()
        .ok_or("a button has no text.content")?
        .to_string();
    let behaviours = button["behaviors"].as_array().map(Vec::as_slice);
    let callback = behaviours
        .unwrap_or_default()
        .iter()
        .find(|behaviour| behaviour["type"] == "callback")
        .map(|behaviour| &behaviour["value"]);
    let value = [Some(&button["value"]), callback]
        .into_iter()
        .flatten()
        .find(|value| !value.is_null());
    let Some(value) = value else {
        let links = ["url", "multi_url"]
            .iter()
            .any(|field| !button[field].is_null())
            || behaviours
                .unwrap_or_default()
                .iter()
                .any(|behaviour| behaviour["type"] == "open_url");
        if !links {
            return Err(format!("button \"{label}\" has no value"));
        }
        return Ok((label, String::new()));
    };
    let data = match value["data"].as_str() {
        Some(data) => data.to_string(),
        None => value.to_string(),
    };
    Ok((label, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(content: &str) -> Value {
        json!({"tag": "plain_text", "content": content})
    }

    #[test]
    fn buttons_are_found_in_1_0_actions_and_2_0_behaviours() {
        let v1 = json!({"elements": [
            {"tag": "div", "text": text("Run it?")},
            {"tag": "action", "actions": [
                {"tag": "button", "text": text("Yes"), "value": {"data": "y"}},
                {"tag": "button", "text": text("Raw"), "value": {"n": 1}},
            ]},
        ]});
        assert_eq!(
            buttons(&v1).unwrap(),
            [
                ("Yes".into(), "y".into()),
                ("Raw".into(), r#"{"n":1}"#.into())
            ]
        );
        let v2 = json!({"schema": "2.0", "body": {"elements": [
            {"tag": "button", "text": text("Later"),
             "behaviors": [{"type": "callback", "value": {"data": "l"}}]},
            {"tag": "button", "text": text("Docs"), "url": "https://example.com"},
        ]}});
        assert_eq!(
            buttons(&v2).unwrap(),
            [("Later".into(), "l".into()), ("Docs".into(), String::new())]
        );
    }

    #[test]
    fn a_button_that_can_never_answer_is_refused() {
        let no_value = json!({"elements": [{"tag": "action", "actions": [
            {"tag": "button", "text": text("Yes")},
        ]}]});
        let error = buttons(&no_value).unwrap_err();
        assert_eq!(error, "button \"Yes\" has no value");
        assert!(refusal(&error).contains("ErrorValue: button \"Yes\" has no value;"));
        let no_text = json!({"elements": [{"tag": "button", "value": {"data": "y"}}]});
        assert!(buttons(&no_text).is_err());
        assert!(buttons(&json!(["not", "a", "card"])).is_err());
    }
}
