//! The fake's wire format, checked with raw HTTP/1.1 and a plain WebSocket client rather than
//! our channel, so that a channel bug and a matching fake bug cannot hide each other.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use super::frame::{self, Frame, header};
use super::*;

/// One request on its own connection: the status code and the JSON body.
async fn exchange(fake: &FakeFeishu, request: &str, body: &str) -> (u16, Value) {
    exchange_with(fake, request, "", body).await
}

/// The same, with `headers` (each line ending in \r\n) added.
async fn exchange_with(
    fake: &FakeFeishu,
    request: &str,
    headers: &str,
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(fake.address()).await.unwrap();
    let request = format!(
        "{request} HTTP/1.1\r\nHost: open.feishu.cn\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

async fn fake() -> FakeFeishu {
    FakeFeishu::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_secret_gets_10014_and_the_right_one_a_token() {
    let fake = fake().await;
    let path = "POST /open-apis/auth/v3/tenant_access_token/internal";
    let wrong = json!({"app_id": APP_ID, "app_secret": "nope"}).to_string();
    let (_, body) = exchange(&fake, path, &wrong).await;
    assert_eq!(body, json!({"code": 10014, "msg": "app secret invalid"}));
    let right = json!({"app_id": APP_ID, "app_secret": APP_SECRET}).to_string();
    let (status, body) = exchange(&fake, path, &right).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["expire"].as_u64()),
        (200, Some(0), Some(7200))
    );
    let token = body["tenant_access_token"].as_str().unwrap().to_string();
    assert_eq!(fake.current_token(), Some(token.clone()));
    // The same token comes back while it has time left.
    let (_, again) = exchange(&fake, path, &right).await;
    assert_eq!(again["tenant_access_token"], token.as_str());

    let (_, body) = exchange(&fake, "GET /open-apis/bot/v3/info", "").await;
    assert_eq!(body["code"], 99_991_661);
    fake.expire_token();
    let (_, fresh) = exchange(&fake, path, &right).await;
    assert_ne!(fresh["tenant_access_token"], token.as_str());
}

/// The bootstrap's URL, then a plain WebSocket connection to it.
async fn connect(
    fake: &FakeFeishu,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    i32,
) {
    let credentials = json!({"AppID": APP_ID, "AppSecret": APP_SECRET}).to_string();
    let (_, body) = exchange(fake, "POST /callback/ws/endpoint", &credentials).await;
    assert_eq!(body["data"]["ClientConfig"]["PingInterval"], 120);
    let url = body["data"]["URL"].as_str().unwrap().to_string();
    let service: i32 = url
        .split("service_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    (socket, service)
}

async fn next_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Frame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = message {
            return Frame::from_bytes(&bytes).unwrap();
        }
    }
}

#[tokio::test]
async fn events_come_as_frames_pings_get_pongs_and_unacked_events_come_again() {
    let fake = fake().await;
    let credentials = json!({"AppID": APP_ID, "AppSecret": "wrong"}).to_string();
    let (_, refused) = exchange(&fake, "POST /callback/ws/endpoint", &credentials).await;
    assert_eq!(refused["code"], 514);

    let (mut socket, service) = connect(&fake).await;
    fake.fragment_events(2);
    let message_id = fake.inject_text("ou_a", "oc_b", "hello");
    let first = next_frame(&mut socket).await;
    let second = next_frame(&mut socket).await;
    assert_eq!((first.method, first.service), (frame::DATA, service));
    assert_eq!(first.header("type"), Some("event"));
    assert_eq!(
        (first.header("sum"), first.header("seq")),
        (Some("2"), Some("0"))
    );
    assert_eq!(second.header("seq"), Some("1"));
    assert_eq!(first.header("message_id"), second.header("message_id"));
    let whole = [first.payload.clone().unwrap(), second.payload.unwrap()].concat();
    let event: Value = serde_json::from_slice(&whole).unwrap();
    assert_eq!(event["header"]["event_type"], "im.message.receive_v1");
    assert_eq!(event["event"]["message"]["message_id"], message_id.as_str());
    let content: Value =
        serde_json::from_str(event["event"]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"text": "hello"}));

    let ping = Frame {
        service,
        method: frame::CONTROL,
        headers: vec![header("type", "ping")],
        ..Frame::default()
    };
    socket.send(Message::binary(ping.to_bytes())).await.unwrap();
    let pong = next_frame(&mut socket).await;
    assert_eq!(
        (pong.method, pong.header("type")),
        (frame::CONTROL, Some("pong"))
    );
    let config: Value = serde_json::from_slice(&pong.payload.unwrap()).unwrap();
    assert_eq!(config["PingInterval"], 120);
    assert_eq!(fake.pings()[0].service, fake.pings()[0].expected_service);

    // Unacknowledged: a new connection gets it again.
    drop(socket);
    assert!(fake.wait_open_connections(0, Duration::from_secs(5)).await);
    fake.fragment_events(1);
    let (mut socket, _) = connect(&fake).await;
    let again = next_frame(&mut socket).await;
    assert_eq!(again.header("message_id"), first.header("message_id"));
    assert_eq!(fake.deliveries(&message_id), 2);

    // Acknowledged: the next connection gets nothing.
    let mut ack = again;
    ack.headers.push(header("biz_rt", "3"));
    ack.payload = Some(br#"{"code":200,"headers":{},"data":null}"#.to_vec());
    socket.send(Message::binary(ack.to_bytes())).await.unwrap();
    let acks = fake.wait_acks(1, Duration::from_secs(5)).await;
    assert_eq!(acks[0].message_id, message_id);
    assert_eq!(
        (acks[0].biz_rt.as_deref(), acks[0].code),
        (Some("3"), Some(200))
    );
    assert!(fake.acked(&message_id));
    assert_eq!(fake.drop_connections(), 1);
    assert!(fake.wait_open_connections(0, Duration::from_secs(5)).await);
    let (mut socket, _) = connect(&fake).await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
    assert!(nothing.is_err(), "{nothing:?}");
    assert_eq!(fake.connections_opened(), 3);
}

#[tokio::test]
async fn a_used_ticket_is_refused_with_handshake_headers() {
    let fake = fake().await;
    let credentials = json!({"AppID": APP_ID, "AppSecret": APP_SECRET}).to_string();
    let (_, body) = exchange(&fake, "POST /callback/ws/endpoint", &credentials).await;
    let url = body["data"]["URL"].as_str().unwrap().to_string();
    let (_socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let error = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("{error:?}");
    };
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["Handshake-Status"], "403");
}

#[tokio::test]
async fn cards_keep_their_buttons_and_presses_come_as_callbacks_in_event_or_card_frames() {
    let fake = fake().await;
    let credentials = json!({"app_id": APP_ID, "app_secret": APP_SECRET}).to_string();
    let path = "POST /open-apis/auth/v3/tenant_access_token/internal";
    let (_, body) = exchange(&fake, path, &credentials).await;
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        body["tenant_access_token"].as_str().unwrap()
    );
    let send = "POST /open-apis/im/v1/messages?receive_id_type=chat_id";
    let card = |content: &str| {
        json!({"receive_id": "oc_b", "msg_type": "interactive", "content": content}).to_string()
    };
    // Not JSON, and a button that can never answer: refused as the server refuses cards.
    for content in [
        "{not json".to_string(),
        json!({"elements": [{"tag": "action", "actions": [
            {"tag": "button", "text": {"tag": "plain_text", "content": "Yes"}},
        ]}]})
        .to_string(),
    ] {
        let (status, body) = exchange_with(&fake, send, &auth, &card(&content)).await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(230_099)),
            "{body}"
        );
        assert!(
            body["msg"]
                .as_str()
                .unwrap()
                .starts_with("Failed to create card content")
        );
    }
    let good = json!({"elements": [
        {"tag": "div", "text": {"tag": "plain_text", "content": "Run it?"}},
        {"tag": "action", "actions": [
            {"tag": "button", "text": {"tag": "plain_text", "content": "Yes"}, "value": {"data": "y"}},
            {"tag": "button", "text": {"tag": "plain_text", "content": "No"}, "value": {"data": "n"}},
        ]},
    ]});
    let (status, body) = exchange_with(&fake, send, &auth, &card(&good.to_string())).await;
    assert_eq!((status, body["code"].as_i64()), (200, Some(0)), "{body}");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].msg_type, "interactive");
    assert_eq!(
        sent[0].buttons,
        [("Yes".into(), "y".into()), ("No".into(), "n".into())]
    );

    let (mut socket, service) = connect(&fake).await;
    let press = fake.inject_button_press("ou_a", "oc_b", "y");
    let frame = next_frame(&mut socket).await;
    assert_eq!((frame.method, frame.service), (frame::DATA, service));
    assert_eq!(frame.header("type"), Some("event"));
    let event: Value = serde_json::from_slice(frame.payload.as_deref().unwrap()).unwrap();
    assert_eq!(event["schema"], "2.0");
    assert_eq!(event["header"]["event_type"], "card.action.trigger");
    assert_eq!(event["header"]["event_id"], press.as_str());
    assert_eq!(event["event"]["operator"]["open_id"], "ou_a");
    assert_eq!(event["event"]["action"]["value"], json!({"data": "y"}));
    assert_eq!(event["event"]["context"]["open_chat_id"], "oc_b");
    assert!(
        event["event"]["context"]["open_message_id"]
            .as_str()
            .unwrap()
            .starts_with("om_")
    );

    // Answered as the Go SDK answers a callback: `{}` in base64.
    let mut ack = frame;
    ack.headers.push(header("biz_rt", "1"));
    ack.payload = Some(br#"{"code":200,"headers":{},"data":"e30="}"#.to_vec());
    socket.send(Message::binary(ack.to_bytes())).await.unwrap();
    let acks = fake.wait_acks(1, Duration::from_secs(5)).await;
    assert_eq!(acks[0].message_id, press);
    assert_eq!(acks[0].data, Some(json!({})));
    assert!(fake.acked(&press));

    fake.callbacks_in_card_frames(true);
    let other = fake.inject_card_action("ou_a", "oc_b", json!({"n": 1}));
    let frame = next_frame(&mut socket).await;
    assert_eq!(frame.header("type"), Some("card"));
    let mut ack = frame;
    ack.payload = Some(br#"{"code":200,"headers":{},"data":null}"#.to_vec());
    socket.send(Message::binary(ack.to_bytes())).await.unwrap();
    let acks = fake.wait_acks(2, Duration::from_secs(5)).await;
    assert_eq!(
        (acks[1].message_id.as_str(), &acks[1].data),
        (other.as_str(), &None)
    );
    assert!(fake.acked(&other));
}
