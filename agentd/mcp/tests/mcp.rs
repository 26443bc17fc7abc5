//! The MCP client against the fake MCP server over loopback http: the session's lifecycle,
//! both pages of tools, calls and their errors, answers in SSE, a session the server forgot,
//! the limits, and the tool list trimmed for the prompt.

use std::path::Path;
use std::time::Duration;

use carapace_fakes::mcp::{FakeMcp, Framing};
use carapace_mcp::{Budget, Error, Limits, McpClient, spec_bytes, trim};
use serde_json::json;

fn http() -> reqwest::Client {
    carapace_http::client_trusting(None, Path::new("-")).unwrap()
}

/// Short enough that a hung test fails in seconds.
fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

async fn connected(framing: Framing) -> (FakeMcp, McpClient) {
    let fake = FakeMcp::start().await.unwrap();
    fake.set_framing(framing);
    let client = McpClient::connect(http(), &fake.url(), limits())
        .await
        .unwrap();
    (fake, client)
}

fn method(name: &str, status: u16) -> (String, u16) {
    (name.to_owned(), status)
}

#[tokio::test]
async fn connecting_initializes_a_session_and_every_later_request_carries_it() {
    let (fake, client) = connected(Framing::Json).await;
    let info = client.server_info();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("fake-mcp", "1.0.0")
    );
    assert_eq!(info.protocol_version, "2025-06-18");
    assert_eq!(
        fake.methods(),
        [
            method("initialize", 200),
            method("notifications/initialized", 202)
        ]
    );
    client.list_tools().await.unwrap();
    let requests = fake.requests();
    let init = &requests[0];
    assert_eq!(init.params["protocolVersion"], "2025-06-18");
    assert_eq!(init.params["capabilities"], json!({}));
    assert_eq!(init.params["clientInfo"]["name"], "carapace");
    assert_eq!(
        (init.session_id.as_deref(), init.protocol_version.as_deref()),
        (None, None)
    );
    for later in &requests[1..] {
        assert_eq!(
            later.session_id.as_deref(),
            Some("fake-session-0001"),
            "{later:?}"
        );
        assert_eq!(
            later.protocol_version.as_deref(),
            Some("2025-06-18"),
            "{later:?}"
        );
    }
    for request in &requests {
        assert_eq!(
            request.accept.as_deref(),
            Some("application/json, text/event-stream")
        );
    }
}

#[tokio::test]
async fn tools_come_from_both_pages_and_a_bad_name_is_left_out() {
    let (fake, client) = connected(Framing::Json).await;
    let list = client.list_tools().await.unwrap();
    let names: Vec<&str> = list.tools.iter().map(|tool| tool.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "add",
            "lookup_order",
            "snapshot",
            "broken_report",
            "dump",
            "wait"
        ]
    );
    assert_eq!(list.left_out.len(), 1);
    assert_eq!(list.left_out[0].name, "bad name!");
    assert!(
        list.left_out[0].reason.contains("letters, digits"),
        "{:?}",
        list.left_out
    );
    let add = &list.tools[0];
    assert!(add.description.starts_with("Adds two numbers"));
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|request| request.method == "tools/list")
        .map(|request| request.params)
        .collect();
    assert_eq!(pages, [json!({}), json!({"cursor": "page-2"})]);
}

#[tokio::test]
async fn calls_give_text_and_name_what_is_not_text() {
    let (_fake, client) = connected(Framing::Json).await;
    let sum = client
        .call_tool("add", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(sum, "5");
    let sum = client
        .call_tool("add", json!({"a": 0.5, "b": 2}))
        .await
        .unwrap();
    assert_eq!(sum, "2.5");
    let order = client
        .call_tool("lookup_order", json!({"id": "A-1042"}))
        .await
        .unwrap();
    assert_eq!(order, "Order A-1042: 2 items, shipped on 2026-03-02");
    // No arguments at all is an empty object.
    let chart = client
        .call_tool("snapshot", serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(chart, "Sales last week:\n[image/png, 3 KB]");
}

async fn assert_errors(client: &McpClient) {
    let error = client
        .call_tool("broken_report", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ToolFailed { .. }), "{error}");
    assert!(
        error.to_string().contains("the report service is down"),
        "{error}"
    );

    let error = client.call_tool("nope", json!({})).await.unwrap_err();
    let Error::Rpc { code, message, .. } = &error else {
        panic!("not a JSON-RPC error: {error}");
    };
    assert_eq!((*code, message.as_str()), (-32602, "Unknown tool: nope"));
    assert!(error.to_string().contains("tool nope"), "{error}");

    let error = client
        .call_tool("add", json!({"a": "two"}))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Rpc { code: -32602, .. }), "{error}");
    assert!(error.to_string().contains("must be numbers"), "{error}");
}

#[tokio::test]
async fn tool_and_protocol_errors_are_told_apart() {
    let (fake, client) = connected(Framing::Json).await;
    assert_errors(&client).await;
    // Refused before anything is sent.
    let sent = fake.requests().len();
    let error = client.call_tool("bad name!", json!({})).await.unwrap_err();
    assert!(matches!(error, Error::BadToolName { .. }), "{error}");
    let error = client.call_tool("add", json!([1, 2])).await.unwrap_err();
    assert!(matches!(error, Error::BadArguments { .. }), "{error}");
    assert_eq!(fake.requests().len(), sent);
}

#[tokio::test]
async fn answers_in_an_event_stream_work_alike() {
    let (fake, client) = connected(Framing::Sse).await;
    assert_eq!(client.server_info().name, "fake-mcp");
    assert_eq!(client.list_tools().await.unwrap().tools.len(), 6);
    let sum = client
        .call_tool("add", json!({"a": 40, "b": 2}))
        .await
        .unwrap();
    assert_eq!(sum, "42");
    assert_errors(&client).await;
    assert!(fake.requests().iter().all(|request| request.status < 300));
}

#[tokio::test]
async fn a_forgotten_session_is_begun_again_once() {
    let (fake, client) = connected(Framing::Json).await;
    fake.forget_sessions();
    let sum = client
        .call_tool("add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(sum, "2");
    assert_eq!(
        fake.methods()[2..],
        [
            method("tools/call", 404),
            method("initialize", 200),
            method("notifications/initialized", 202),
            method("tools/call", 200),
        ]
    );
    let requests = fake.requests();
    assert_eq!(
        requests[3].session_id, None,
        "a new session is asked for without the old id"
    );
    assert_eq!(requests[5].session_id.as_deref(), Some("fake-session-0002"));
    // The new session stays.
    client
        .call_tool("add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[6].session_id.as_deref(),
        Some("fake-session-0002")
    );
}

#[tokio::test]
async fn big_and_slow_answers_are_cut_off() {
    for framing in [Framing::Json, Framing::Sse] {
        let fake = FakeMcp::start().await.unwrap();
        fake.set_framing(framing);
        let limits = Limits {
            timeout: Duration::from_millis(500),
            max_body: 64 << 10,
        };
        let client = McpClient::connect(http(), &fake.url(), limits)
            .await
            .unwrap();
        let fits = client
            .call_tool("dump", json!({"bytes": 60_000}))
            .await
            .unwrap();
        assert_eq!(fits.len(), 60_000);
        let error = client
            .call_tool("dump", json!({"bytes": 100_000}))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::TooLarge { limit_kib: 64, .. }),
            "{framing:?}: {error}"
        );
        let error = client
            .call_tool("wait", json!({"ms": 3000}))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Timeout { .. }),
            "{framing:?}: {error}"
        );
    }
}

#[tokio::test]
async fn bad_addresses_are_named() {
    let error = McpClient::connect(http(), "http://mcp.example.com/mcp", limits()).await;
    let error = error.err().unwrap();
    assert!(matches!(error, Error::BadUrl(_)), "{error}");

    let fake = FakeMcp::start().await.unwrap();
    let wrong_path = fake.url().replace("/mcp", "/api");
    let error = McpClient::connect(http(), &wrong_path, limits())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Status { status: 404, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("often ending in /mcp"),
        "{error}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let error = McpClient::connect(http(), &url, limits())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
    assert!(
        !error.to_string().contains("/mcp"),
        "no URL in errors: {error}"
    );
}

#[tokio::test]
async fn closing_ends_the_session() {
    let (fake, client) = connected(Framing::Json).await;
    client.close().await.unwrap();
    let last = fake.requests().pop().unwrap();
    assert_eq!((last.http_method.as_str(), last.status), ("DELETE", 200));
    assert_eq!(last.session_id.as_deref(), Some("fake-session-0001"));
}

#[tokio::test]
async fn the_fake_refuses_requests_without_the_session() {
    let fake = FakeMcp::start().await.unwrap();
    let response = http()
        .post(fake.url())
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = http()
        .post(fake.url())
        .header("accept", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}

#[tokio::test]
async fn the_tool_list_is_trimmed_to_the_budget() {
    let (_fake, client) = connected(Framing::Json).await;
    let tools = client.list_tools().await.unwrap().tools;
    let untrimmed: usize = tools
        .iter()
        .map(|tool| tool.input_schema.to_string().len() + tool.description.len())
        .sum();
    let budget = Budget {
        bytes: 1500,
        description_chars: 120,
        schema_description_chars: 40,
    };
    let trimmed = trim(&tools, &budget);
    assert!(
        untrimmed > budget.bytes,
        "{untrimmed}: the fake's tools must need trimming"
    );
    assert!(trimmed.left_out.is_empty(), "{:?}", trimmed.left_out);
    let total: usize = trimmed.specs.iter().map(spec_bytes).sum();
    assert!(total <= budget.bytes, "{total}");
    let json = serde_json::to_string(&trimmed.specs).unwrap();
    for noise in ["$schema", "\"title\"", "\"examples\""] {
        assert!(!json.contains(noise), "{noise} in {json}");
    }
    let add = &trimmed.specs[0];
    assert_eq!(add.description.chars().count(), 120);
    assert_eq!(add.parameters["required"], json!(["a", "b"]));
    let a = add.parameters["properties"]["a"]["description"]
        .as_str()
        .unwrap();
    assert_eq!(a.chars().count(), 40);

    let small = trim(
        &tools,
        &Budget {
            bytes: 500,
            ..budget
        },
    );
    assert!(!small.left_out.is_empty());
    assert_eq!(small.specs.len() + small.left_out.len(), tools.len());
    assert!(small.specs.iter().map(spec_bytes).sum::<usize>() <= 500);
}
