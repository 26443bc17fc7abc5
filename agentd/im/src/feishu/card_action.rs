//! A press on a button of one of our cards (`send.rs`), read from a `card.action.trigger`
//! callback as an [`Incoming`] whose content is [`Content::Button`].
//!
//! The callback is a schema-2.0 event (larksuite/oapi-sdk-go `event/dispatcher/callback`,
//! `CardActionTriggerEvent`): `header.event_id` names it, `event.operator.open_id` is who
//! pressed, `event.action.value` is the button's `value` as we sent it (`{"data": …}`) and
//! `event.context.open_chat_id` the chat the card is in. The operator carries no name, so the
//! open_id stands in for one, as it does for messages.
//!
//! A press we cannot read (no string `data`: not one of our buttons; no operator; no chat,
//! as for a card outside a chat) is skipped, and acknowledged at once like any other event.

use serde::Deserialize;
use serde_json::Value;

use crate::{ChannelKind, Content, Incoming};

/// The callback a press on a card's interactive element sends.
pub(super) const CARD_ACTION: &str = "card.action.trigger";

#[derive(Deserialize)]
struct CardAction {
    operator: Option<Operator>,
    action: Option<Action>,
    context: Option<Context>,
}

#[derive(Deserialize)]
struct Operator {
    #[serde(default)]
    open_id: String,
}

#[derive(Deserialize)]
struct Action {
    /// The pressed element's `value`: any JSON the card gave it.
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    open_chat_id: String,
}

/// The press in `event` (the callback's `event` object), known by the callback's `event_id`.
pub(super) fn read(event_id: &str, event: Value) -> Option<Incoming> {
    let press: CardAction = serde_json::from_value(event).ok()?;
    let open_id = press.operator?.open_id;
    let chat = press.context?.open_chat_id;
    let data = press.action?.value.get("data")?.as_str()?.to_string();
    if event_id.is_empty() || open_id.is_empty() || chat.is_empty() || data.is_empty() {
        return None;
    }
    Some(Incoming {
        channel: ChannelKind::Feishu,
        id: event_id.to_string(),
        chat,
        sender: open_id.clone(),
        message_id: String::new(),
        sender_name: open_id,
        content: Content::Button { data },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feishu::frame::Answer;
    use crate::feishu::incoming;
    use serde_json::json;

    /// A press as the platform sends it (the shape of the Go SDK's CardActionTriggerEvent,
    /// values in the style of Feishu's documentation).
    fn press(value: Value) -> Value {
        json!({
            "schema": "2.0",
            "header": {
                "event_id": "f7984f25108f8137722bb63cee927e66",
                "token": "066zT6pS4QCbgj5Do145GfDbbagCHGgF",
                "create_time": "1603977298000000",
                "event_type": "card.action.trigger",
                "tenant_key": "2df73991750c4b86",
                "app_id": "cli_a5f3e1d2c4b60013"
            },
            "event": {
                "operator": {
                    "tenant_key": "2df73991750c4b86",
                    "user_id": "867e3a7c",
                    "open_id": "ou_3c14f3a59eaf2825dbe25359f15c8a1b",
                    "union_id": "on_cad4860e7af114fb4ff6c5d496d1dd76"
                },
                "token": "c-295ee57216a5dc9de90fefd0aadb4b1d7d337d3b",
                "action": {"value": value, "tag": "button"},
                "host": "im_message",
                "context": {
                    "open_message_id": "om_574d639e4a44e4dd646eaf628e2f2b5e",
                    "open_chat_id": "oc_e4d2605ca917e695f54f11aaf56f2b16"
                }
            }
        })
    }

    fn read_payload(payload: &Value) -> incoming::Read {
        incoming::read(payload.to_string().as_bytes())
    }

    #[test]
    fn a_press_names_its_chat_operator_and_data_and_is_answered_as_a_callback() {
        let result = read_payload(&press(json!({"data": "approve:42"})));
        assert_eq!(result.answer, Answer::Callback);
        let incoming = result.message.unwrap();
        assert_eq!(incoming.channel, ChannelKind::Feishu);
        assert_eq!(incoming.id, "f7984f25108f8137722bb63cee927e66");
        assert_eq!(incoming.chat, "oc_e4d2605ca917e695f54f11aaf56f2b16");
        assert_eq!(incoming.sender, "ou_3c14f3a59eaf2825dbe25359f15c8a1b");
        assert_eq!(incoming.sender_name, incoming.sender);
        assert_eq!(
            incoming.content,
            Content::Button {
                data: "approve:42".into()
            }
        );
    }

    #[test]
    fn presses_without_string_data_are_skipped_but_still_answered_as_callbacks() {
        for value in [
            json!({"data": 42}),
            json!({"data": ""}),
            json!({"other": "x"}),
            json!("data"),
            Value::Null,
        ] {
            let result = read_payload(&press(value.clone()));
            assert!(result.message.is_none(), "{value}");
            assert_eq!(result.answer, Answer::Callback, "{value}");
        }
    }

    #[test]
    fn presses_without_an_operator_a_chat_or_an_id_are_skipped() {
        let good = press(json!({"data": "x"}));
        for (pointer, replacement) in [
            ("/event/operator", Value::Null),
            ("/event/operator/open_id", json!("")),
            ("/event/context", Value::Null),
            ("/event/context/open_chat_id", json!("")),
            ("/event/action", Value::Null),
            ("/event/action", json!("button")),
            ("/event", json!([])),
            ("/header/event_id", json!("")),
        ] {
            let mut broken = good.clone();
            *broken.pointer_mut(pointer).unwrap() = replacement;
            let result = read_payload(&broken);
            assert!(result.message.is_none(), "{pointer}");
            assert_eq!(result.answer, Answer::Callback, "{pointer}");
        }
        // Another event type is none we know: skipped, and answered as an event.
        let mut untyped = good;
        untyped["header"]["event_type"] = json!("card.action.trigger_v1");
        assert_eq!(read_payload(&untyped).answer, Answer::Event);
    }
}
