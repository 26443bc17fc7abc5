//! What the integration tests share: a fake provider on loopback, settings that point at
//! it, and a client. Each test binary uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use carapace_fakes::llm::{Api, FakeLlm};
use carapace_llm::{ApiKind, Llm, Message, ProviderSettings, Request, Timeouts, ToolSpec};

pub const LOOPBACK: &str = "127.0.0.1:0";

/// A key that must never show up in an error.
pub const SECRET: &str = "sk-test-SECRET-9f8e7d6c5b4a";

pub const BOTH: [(Api, ApiKind); 2] = [
    (Api::OpenAi, ApiKind::OpenAi),
    (Api::Anthropic, ApiKind::Anthropic),
];

pub async fn fake() -> FakeLlm {
    let address: SocketAddr = LOOPBACK.parse().unwrap();
    let fake = FakeLlm::start(address, None).await.unwrap();
    fake.set_key(SECRET);
    fake
}

pub fn settings(fake: &FakeLlm, api: Api, kind: ApiKind) -> ProviderSettings {
    settings_at(&fake.base_url(api), kind)
}

pub fn settings_at(base_url: &str, kind: ApiKind) -> ProviderSettings {
    ProviderSettings {
        api: kind,
        base_url: base_url.to_owned(),
        model: "test-model".into(),
        api_key: SECRET.into(),
        max_tokens: 256,
    }
}

pub fn http() -> reqwest::Client {
    carapace_http::client_trusting(None, Path::new("-")).unwrap()
}

pub fn llm(providers: Vec<ProviderSettings>) -> Llm {
    // Short limits: a test that hangs should fail in seconds, not minutes.
    Llm::new(http(), providers)
        .unwrap()
        .with_timeouts(Timeouts {
            request: Duration::from_secs(10),
            idle: Duration::from_secs(5),
        })
}

pub fn ask(text: &str) -> Request {
    Request {
        system: "You are a test.".into(),
        messages: vec![Message::user(text)],
        tools: Vec::new(),
    }
}

pub fn lamp_tool() -> ToolSpec {
    ToolSpec {
        name: "lamp".into(),
        description: "Switches the desk lamp.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"on": {"type": "boolean"}},
            "required": ["on"],
        }),
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind(LOOPBACK).unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/v1")
}

/// Asserts that neither the Display nor the Debug form of `error` holds the key.
pub fn assert_no_key(error: &carapace_llm::Error) {
    let display = error.to_string();
    let debug = format!("{error:?}");
    assert!(!display.contains(SECRET), "the key leaked: {display}");
    assert!(!debug.contains(SECRET), "the key leaked: {debug}");
}
