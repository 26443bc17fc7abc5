//! The fake's wire format, checked with raw HTTP/1.1 rather than our own client, so that a
//! client bug and a matching fake bug cannot hide each other.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// One request on its own connection: the status code and the JSON body.
async fn exchange(fake: &FakeTelegram, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(fake.address()).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: api.telegram.org\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

async fn fake() -> FakeTelegram {
    FakeTelegram::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_token_gets_the_real_401() {
    let fake = fake().await;
    let answer = exchange(&fake, "/bot1:wrong/getMe", "application/json", "{}").await;
    let expected = json!({"ok": false, "error_code": 401, "description": "Unauthorized"});
    assert_eq!(answer, (401, expected));
    let (status, body) = exchange(&fake, &format!("/bot{TOKEN}/getMe"), "text/plain", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["username"], BOT_USERNAME);
}

#[tokio::test]
async fn get_updates_takes_form_parameters_and_confirms_below_the_offset() {
    let fake = fake().await;
    let first = fake.inject_text(7, 7, "Ada", "one");
    let second = fake.inject_text(7, 7, "Ada", "two");
    let path = format!("/bot{TOKEN}/getUpdates");
    let form = "application/x-www-form-urlencoded";
    let (_, body) = exchange(&fake, &path, form, "limit=1").await;
    assert_eq!(body["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["result"][0]["update_id"], first);
    assert_eq!(body["result"][0]["message"]["text"], "one");
    assert_eq!(body["result"][0]["message"]["from"]["id"], 7);

    let (_, body) = exchange(&fake, &path, form, &format!("offset={second}")).await;
    assert_eq!(body["result"][0]["update_id"], second);
    assert_eq!(fake.confirmed_offset(), second);
    // The first is forgotten: even without an offset it does not come back.
    let (_, body) = exchange(&fake, &path, form, "").await;
    assert_eq!(body["result"][0]["update_id"], second);
}

#[tokio::test]
async fn a_long_poll_is_held_until_an_update_exists() {
    let fake = fake().await;
    let injector = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        injector.inject_text(7, 7, "Ada", "late");
    });
    let path = format!("/bot{TOKEN}/getUpdates");
    let started = Instant::now();
    let (_, body) = exchange(&fake, &path, "application/json", r#"{"timeout": 20}"#).await;
    assert_eq!(body["result"][0]["message"]["text"], "late");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn send_message_takes_query_parameters_and_refuses_overlong_text() {
    let fake = fake().await;
    let path = format!("/bot{TOKEN}/sendMessage?chat_id=-42&text=hello%20there");
    let (status, body) = exchange(&fake, &path, "text/plain", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["chat"]["id"], -42);
    assert_eq!(fake.sent()[0].text, "hello there");

    let long = json!({"chat_id": 1, "text": "x".repeat(4097)}).to_string();
    let path = format!("/bot{TOKEN}/sendMessage");
    let (status, body) = exchange(&fake, &path, "application/json", &long).await;
    assert_eq!(status, 400);
    assert_eq!(body["description"], "Bad Request: message is too long");
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn failures_come_as_asked_and_then_stop() {
    let fake = fake().await;
    fake.rate_limit_next("getMe", 1, 9);
    let path = format!("/bot{TOKEN}/getMe");
    let (status, body) = exchange(&fake, &path, "application/json", "{}").await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 9);
    let (status, _) = exchange(&fake, &path, "application/json", "{}").await;
    assert_eq!(status, 200);
    assert_eq!(fake.requests(), ["getMe", "getMe"]);
}

#[tokio::test]
async fn the_first_call_of_each_method_is_timed_and_chat_actions_are_answered() {
    let fake = fake().await;
    assert_eq!(fake.first_request_at("getUpdates"), None);
    let before = Instant::now();
    let path = format!("/bot{TOKEN}/sendChatAction");
    let body = r#"{"chat_id": 7, "action": "typing"}"#;
    let (status, answer) = exchange(&fake, &path, "application/json", body).await;
    assert_eq!((status, answer["result"].clone()), (200, json!(true)));
    let first = fake.first_request_at("sendchataction").unwrap();
    assert!(first >= before);
    exchange(&fake, &path, "application/json", body).await;
    assert_eq!(fake.first_request_at("sendChatAction"), Some(first));
    let path = format!("/bot{TOKEN}/setMessageReaction");
    let (status, _) = exchange(&fake, &path, "application/json", "{}").await;
    assert_eq!(status, 400);
}
