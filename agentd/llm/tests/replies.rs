//! Whole replies from the fake provider over loopback HTTP, in both APIs: streamed text,
//! a tool call and the request that carries its result back, an image shown with a message,
//! the minimal check request, and what one small request weighs.

mod common;

use std::time::{Duration, Instant};

use carapace_fakes::llm::{Api, Script, images_in};
use carapace_llm::{ApiKind, Error, Image, Message, Request, ToolCall};
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn an_image_reaches_the_model_in_both_apis_and_a_mislabelled_one_is_refused() {
    let photo = carapace_fakes::page::receipt_photo();
    for (api, kind) in BOTH {
        let fake = fake().await;
        fake.push(Script::text("A receipt."));
        let llm = llm(vec![settings(&fake, api, kind)]);
        let mut request = ask("what is this?");
        request.messages = vec![Message::User {
            text: "what is this?".into(),
            images: vec![Image::new(photo.clone()).unwrap()],
        }];
        let reply = llm.complete(&request).await.unwrap();
        assert_eq!(reply.text, "A receipt.", "{api:?}");
        let body = &fake.requests()[0].body;
        assert_eq!(images_in(body), vec![photo.clone()], "{api:?}");
        assert!(body.to_string().contains("what is this?"));

        // The API checks the bytes against the type the request gives.
        request.messages = vec![Message::User {
            text: "and this?".into(),
            images: vec![Image {
                media_type: "image/png".into(),
                bytes: photo.clone(),
            }],
        }];
        let error = llm.complete(&request).await.unwrap_err();
        assert!(
            matches!(&error, Error::Rejected { status: 400, message, .. }
                if message.contains("Image does not match the provided media type image/png")),
            "{api:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_text_reply_streams_in_both_apis() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        fake.push(Script::text("The lamp is on, as you asked."));
        let llm = llm(vec![settings(&fake, api, kind)]);
        let before = Instant::now();
        let reply = llm.complete(&ask("lamp?")).await.unwrap();
        assert_eq!(reply.text, "The lamp is on, as you asked.", "{api:?}");
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.provider, 0);
        assert!(
            reply.usage.input_tokens > 0 && reply.usage.output_tokens > 0,
            "{api:?}"
        );
        // The queue is empty now: the default reply echoes the last message.
        let reply = llm.complete(&ask("again")).await.unwrap();
        assert_eq!(reply.text, "ok: again", "{api:?}");

        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let first = &requests[0];
        assert!(first.key_ok && first.api == Some(api));
        assert!(first.arrived >= before && first.arrived <= Instant::now());
        assert_eq!(first.body["model"], "test-model");
        assert_eq!(first.body["stream"], true);
        assert_eq!(first.body["max_tokens"], 256);
    }
}

#[tokio::test]
async fn the_system_prompt_goes_where_each_api_wants_it() {
    let fake = fake().await;
    let openai = llm(vec![settings(&fake, Api::OpenAi, ApiKind::OpenAi)]);
    let anthropic = llm(vec![settings(&fake, Api::Anthropic, ApiKind::Anthropic)]);
    openai.complete(&ask("hi")).await.unwrap();
    anthropic.complete(&ask("hi")).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].body["messages"][0],
        json!({"role": "system", "content": "You are a test."})
    );
    assert_eq!(requests[0].body["stream_options"]["include_usage"], true);
    assert_eq!(requests[1].path, "/v1/messages");
    assert_eq!(requests[1].body["system"], "You are a test.");
    assert_eq!(
        requests[1].body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
}

#[tokio::test]
async fn a_tool_call_round_trips_in_both_apis() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        let llm = llm(vec![settings(&fake, api, kind)]);
        fake.push(Script::Tools {
            text: "Switching it on.".into(),
            calls: vec![
                (
                    "lamp".into(),
                    json!({"on": true, "note": "désolé, \"quoted\""}),
                ),
                ("lamp".into(), json!({"on": false})),
            ],
        });
        let mut request = ask("lamp on, then off");
        request.tools = vec![lamp_tool()];
        let reply = llm.complete(&request).await.unwrap();
        assert_eq!(reply.text, "Switching it on.", "{api:?}");
        let names: Vec<(&str, &Value)> = reply
            .tool_calls
            .iter()
            .map(|call| (call.name.as_str(), &call.arguments))
            .collect();
        assert_eq!(
            names,
            [
                ("lamp", &json!({"on": true, "note": "désolé, \"quoted\""})),
                ("lamp", &json!({"on": false}))
            ],
            "{api:?}"
        );
        let first_id = reply.tool_calls[0].id.clone();
        assert_ne!(first_id, reply.tool_calls[1].id);

        // Send the results back; the fake's default reply echoes the last one.
        request.messages.push(Message::Assistant {
            text: reply.text.clone(),
            tool_calls: reply.tool_calls.clone(),
        });
        for (call, content) in reply.tool_calls.iter().zip(["done", "already off"]) {
            request.messages.push(Message::ToolResult {
                call_id: call.id.clone(),
                content: content.into(),
                is_error: content != "done",
            });
        }
        let second = llm.complete(&request).await.unwrap();
        assert!(second.text.starts_with("ok: "), "{api:?}: {}", second.text);

        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        let body = &requests[1].body;
        match api {
            Api::OpenAi => check_openai_results(body, &reply.tool_calls),
            Api::Anthropic => check_anthropic_results(body, &reply.tool_calls),
        }
    }
}

fn check_openai_results(body: &Value, calls: &[ToolCall]) {
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "lamp");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["required"],
        json!(["on"])
    );
    let messages = body["messages"].as_array().unwrap();
    let assistant = &messages[messages.len() - 3];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], "Switching it on.");
    let sent = &assistant["tool_calls"][0];
    assert_eq!(sent["id"], calls[0].id.as_str());
    assert_eq!(sent["type"], "function");
    assert_eq!(sent["function"]["name"], "lamp");
    // Arguments travel as JSON text, not as an object.
    let text = sent["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        calls[0].arguments
    );
    assert_eq!(
        messages[messages.len() - 2],
        json!({"role": "tool", "tool_call_id": calls[0].id, "content": "done"})
    );
    assert_eq!(
        messages[messages.len() - 1],
        json!({"role": "tool", "tool_call_id": calls[1].id, "content": "error: already off"})
    );
}

fn check_anthropic_results(body: &Value, calls: &[ToolCall]) {
    assert_eq!(body["tools"][0]["name"], "lamp");
    assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["on"]));
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "user, assistant, user: {messages:?}");
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Switching it on."},
            {"type": "tool_use", "id": calls[0].id, "name": "lamp", "input": calls[0].arguments},
            {"type": "tool_use", "id": calls[1].id, "name": "lamp", "input": calls[1].arguments},
        ]})
    );
    // Both results in one user turn: the API wants roles to alternate.
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": calls[0].id, "content": "done", "is_error": false},
            {"type": "tool_result", "tool_use_id": calls[1].id, "content": "already off", "is_error": true},
        ]})
    );
}

#[tokio::test]
async fn check_sends_a_one_token_ping() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        let llm = llm(vec![settings(&fake, api, kind)]);
        llm.check(0).await.unwrap();
        let requests = fake.wait_requests(1, Duration::from_secs(1)).await.unwrap();
        let body = &requests[0].body;
        assert_eq!(body["max_tokens"], 1, "{api:?}");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert!(body.get("tools").is_none() && body.get("system").is_none());
    }
}

#[tokio::test]
async fn a_small_request_weighs_under_two_kilobytes() {
    for (api, kind) in BOTH {
        let fake = fake().await;
        let llm = llm(vec![settings(&fake, api, kind)]);
        let reply = llm
            .complete(&Request {
                tools: vec![lamp_tool()],
                ..ask("What time is it?")
            })
            .await
            .unwrap();
        let recorded = &fake.requests()[0];
        assert_eq!(reply.bytes_sent, recorded.body_len, "{api:?}");
        assert!(
            reply.bytes_sent < 2048,
            "{api:?}: {} bytes",
            reply.bytes_sent
        );
    }
}
