//! The fake provider's wire formats, read raw (no carapace-llm in between): the exact SSE
//! chunk and event shapes, the 401 bodies of each API, and the whole objects it returns to
//! clients that do not stream. The other tests trust these shapes; this pins them.

mod common;

use carapace_fakes::llm::{Api, Script};
use carapace_llm::sse::{Event, parse_all};
use common::*;
use serde_json::{Value, json};

async fn post(url: String, api: Api, key: Option<&str>, body: Value) -> (u16, String) {
    let mut request = http().post(url).json(&body);
    if let Some(key) = key {
        request = match api {
            Api::OpenAi => request.bearer_auth(key),
            Api::Anthropic => request
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01"),
        };
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn data(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|event| event.data != "[DONE]")
        .map(|event| serde_json::from_str(&event.data).unwrap())
        .collect()
}

#[tokio::test]
async fn openai_chunks_have_the_real_shape() {
    let fake = fake().await;
    fake.push(Script::tool("lamp", json!({"on": true})));
    let url = format!("{}/chat/completions", fake.base_url(Api::OpenAi));
    let body = json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}],
                      "stream": true, "stream_options": {"include_usage": true}});
    let (status, text) = post(url, Api::OpenAi, Some(SECRET), body).await;
    assert_eq!(status, 200);
    let events = parse_all(text.as_bytes());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = data(&events);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-x");
        assert!(chunk["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(chunk["created"].as_u64().unwrap() > 1_700_000_000);
    }
    assert_eq!(chunks[0]["choices"][0]["index"], 0);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let start = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(start["index"], 0);
    assert_eq!(start["type"], "function");
    assert_eq!(start["function"], json!({"name": "lamp", "arguments": ""}));
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"on":true}"#);
    assert!(
        chunks.len() >= 6,
        "the arguments come in fragments: {chunks:?}"
    );
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn anthropic_events_come_in_the_real_order() {
    let fake = fake().await;
    fake.push(Script::Tools {
        text: "Sure.".into(),
        calls: vec![("lamp".into(), json!({"on": true}))],
    });
    let url = format!("{}/v1/messages", fake.base_url(Api::Anthropic));
    let body = json!({"model": "claude-x", "max_tokens": 10, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let (status, text) = post(url, Api::Anthropic, Some(SECRET), body).await;
    assert_eq!(status, 200);
    let events = parse_all(text.as_bytes());
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let payloads = data(&events);
    for (event, payload) in events.iter().zip(&payloads) {
        assert_eq!(payload["type"], event.event.as_str());
    }
    assert_eq!(payloads[0]["message"]["model"], "claude-x");
    assert_eq!(payloads[0]["message"]["role"], "assistant");
    assert_eq!(payloads[5]["content_block"]["type"], "tool_use");
    assert_eq!(payloads[5]["index"], 1);
    assert_eq!(payloads[12]["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_wrong_or_missing_key_gets_each_apis_401() {
    let fake = fake().await;
    let openai = format!("{}/chat/completions", fake.base_url(Api::OpenAi));
    let body = json!({"model": "m", "messages": [], "stream": true});
    let (status, text) = post(openai.clone(), Api::OpenAi, Some("sk-wrong"), body.clone()).await;
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let (status, _) = post(openai, Api::OpenAi, None, body.clone()).await;
    assert_eq!(status, 401);

    let anthropic = format!("{}/v1/messages", fake.base_url(Api::Anthropic));
    let (status, text) = post(anthropic, Api::Anthropic, Some("sk-wrong"), body).await;
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, 401);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|r| !r.key_ok));
}

#[tokio::test]
async fn clients_that_do_not_stream_get_whole_objects() {
    let fake = fake().await;
    fake.push(Script::text("whole text"));
    fake.push(Script::tool("lamp", json!({"on": false})));
    let openai = format!("{}/chat/completions", fake.base_url(Api::OpenAi));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (_, text) = post(openai, Api::OpenAi, Some(SECRET), body.clone()).await;
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], "whole text");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");

    let anthropic = format!("{}/v1/messages", fake.base_url(Api::Anthropic));
    let mut body = body;
    body["max_tokens"] = json!(10);
    let (_, text) = post(anthropic, Api::Anthropic, Some(SECRET), body).await;
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["type"], "tool_use");
    assert_eq!(message["content"][0]["input"], json!({"on": false}));
}

#[tokio::test]
async fn requests_the_real_api_would_refuse_get_a_400() {
    let fake = fake().await;
    fake.push(Script::text("never played"));
    let anthropic = format!("{}/v1/messages", fake.base_url(Api::Anthropic));
    let no_max_tokens = json!({"model": "m", "messages": [], "stream": true});
    let (status, text) = post(anthropic, Api::Anthropic, Some(SECRET), no_max_tokens).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("max_tokens"), "{text}");
    // The refused request did not use up the scripted step.
    let llm = llm(vec![settings(
        &fake,
        Api::OpenAi,
        carapace_llm::ApiKind::OpenAi,
    )]);
    assert_eq!(llm.complete(&ask("hi")).await.unwrap().text, "never played");
}
