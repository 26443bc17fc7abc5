//! The Feishu channel against the fake Feishu open platform over real HTTP and WebSocket on
//! 127.0.0.1 (and once over HTTPS and WSS with a throwaway CA): messages in over the long
//! connection, acknowledgement across a crash and a reconnect, split events, pings, replies
//! and files, questions with buttons and the presses that answer them, the token's renewal,
//! and the failures the real platform produces.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_fakes::feishu::{APP_ID, APP_SECRET, BOT_NAME, ClientConfig, FakeFeishu};
use carapace_im::feishu::DOWNLOAD_LIMIT;
use carapace_im::run_receiver_with;
use carapace_im::{Backoff, Button, Channel, Content, Error, Feishu, FileRef, Incoming, Outgoing};

const ADA: &str = "ou_84aad35d084aa403a838cf73ee18467";
const CHAT: &str = "oc_5ce6d572455d361153b7xx51da133945";
const WAIT: Duration = Duration::from_secs(5);

async fn fake() -> FakeFeishu {
    FakeFeishu::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn feishu_with(fake: &FakeFeishu, secret: &str, batch_wait: Duration) -> Feishu {
    let http = carapace_http::client_trusting(None, Path::new("-")).unwrap();
    let tls = carapace_http::tls_config_trusting(None, Path::new("-")).unwrap();
    Feishu::new(http, tls, &fake.domain(), APP_ID.into(), secret.into())
        .unwrap()
        .with_batch_wait(batch_wait)
}

fn connect(fake: &FakeFeishu) -> Feishu {
    feishu_with(fake, APP_SECRET, WAIT)
}

/// Calls next_batch until it returns something (or `WAIT` passes).
async fn next_messages(feishu: &Feishu) -> Vec<Incoming> {
    let deadline = Instant::now() + WAIT;
    loop {
        let batch = feishu.next_batch().await.unwrap();
        if !batch.is_empty() || Instant::now() > deadline {
            return batch;
        }
    }
}

fn ids(batch: &[Incoming]) -> Vec<&str> {
    batch.iter().map(|message| message.id.as_str()).collect()
}

fn file_of(content: &Content) -> FileRef {
    match content {
        Content::Voice { file, .. } | Content::Photo { file, .. } => file.clone(),
        Content::Document { file, .. } => file.clone(),
        other => panic!("no file in {other:?}"),
    }
}

/// Bytes a careless multipart writer or reader would mangle.
fn awkward_bytes(length: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..length).map(|i| (i * 7 % 256) as u8).collect();
    bytes.extend_from_slice(b"\r\n--boundary\r\n\r\n\x00");
    bytes
}

#[tokio::test]
async fn text_image_file_and_audio_come_in_and_the_next_call_acknowledges_them() {
    let fake = fake().await;
    let feishu = connect(&fake);
    assert_eq!(feishu.check().await.unwrap(), BOT_NAME);
    let (jpeg, pdf, opus) = (
        awkward_bytes(5000),
        awkward_bytes(7000),
        awkward_bytes(3000),
    );
    let text = fake.inject_text(ADA, CHAT, "/start 12345678");
    let image = fake.inject_image(ADA, CHAT, jpeg.clone());
    let file = fake.inject_file(ADA, CHAT, "notes.pdf", pdf.clone());
    let audio = fake.inject_audio(ADA, CHAT, opus.clone(), 2500);
    let sticker = fake.inject_message(ADA, CHAT, "sticker", serde_json::json!({"file_key": "s"}));

    let mut batch = next_messages(&feishu).await;
    while batch.len() < 5 {
        let more = next_messages(&feishu).await;
        assert!(!more.is_empty(), "only {batch:?}");
        batch.extend(more);
    }
    assert_eq!(ids(&batch), [&text, &image, &file, &audio, &sticker]);
    for message in &batch {
        assert_eq!(
            (message.chat.as_str(), message.sender.as_str()),
            (CHAT, ADA)
        );
    }
    assert_eq!(batch[0].content, Content::Text("/start 12345678".into()));
    assert!(matches!(&batch[1].content, Content::Photo { file, .. } if file.message_id == image));
    assert!(matches!(&batch[2].content, Content::Document { name, .. } if name == "notes.pdf"));
    assert!(matches!(
        batch[3].content,
        Content::Voice { seconds: 3, .. }
    ));
    assert_eq!(batch[4].content, Content::Unsupported("sticker".into()));
    for (message, bytes) in batch[1..4].iter().zip([&jpeg, &pdf, &opus]) {
        let file = file_of(&message.content);
        assert_eq!(&feishu.download(&file).await.unwrap(), bytes);
    }

    // Nothing is acknowledged until the core asks for more.
    assert!(fake.acks().is_empty());
    let started = Instant::now();
    let feishu = feishu.with_batch_wait(Duration::from_millis(300));
    assert!(feishu.next_batch().await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
    let acks = fake.wait_acks(5, WAIT).await;
    assert_eq!(acks.len(), 5);
    for (ack, id) in acks.iter().zip([&text, &image, &file, &audio, &sticker]) {
        assert_eq!(&ack.message_id, id);
        assert_eq!(ack.code, Some(200));
        let biz_rt: u64 = ack.biz_rt.as_deref().unwrap().parse().unwrap();
        assert!(biz_rt < 60_000, "{biz_rt}");
    }
}

#[tokio::test]
async fn an_unacknowledged_event_comes_again_after_a_reconnect_and_an_acknowledged_one_does_not() {
    let fake = fake().await;
    let first = fake.inject_text(ADA, CHAT, "one");
    let feishu = connect(&fake);
    assert_eq!(ids(&next_messages(&feishu).await), [&first]);
    // The core takes a while to store, and crashes before it is done: the event is never
    // acknowledged.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(feishu);
    assert!(fake.wait_open_connections(0, WAIT).await);
    assert!(fake.acks().is_empty());

    let feishu = connect(&fake);
    assert_eq!(ids(&next_messages(&feishu).await), [&first]);
    assert_eq!(fake.deliveries(&first), 2);
    // The server may send an event twice on one connection too; it is returned again, and
    // the core drops the copy by its id.
    fake.redeliver();
    assert_eq!(ids(&next_messages(&feishu).await), [&first]);

    // Stored this time: the next call acknowledges it.
    let second = fake.inject_text(ADA, CHAT, "two");
    assert_eq!(ids(&next_messages(&feishu).await), [&second]);
    fake.wait_acks(2, WAIT).await;
    assert!(fake.acked(&first));
    assert!(!fake.acked(&second));
    drop(feishu);
    assert!(fake.wait_open_connections(0, WAIT).await);

    // After another crash only the unacknowledged second message comes again.
    let feishu = connect(&fake);
    assert_eq!(ids(&next_messages(&feishu).await), [&second]);
    assert_eq!(
        fake.deliveries(&first),
        3,
        "two connections and one redelivery"
    );
    assert_eq!(fake.connections_opened(), 3);
}

#[tokio::test]
async fn an_event_split_into_frames_is_put_back_together() {
    let fake = fake().await;
    fake.fragment_events(3);
    let text: String = (0..200).map(|i| format!("line {i}: Grüße 😀\n")).collect();
    let id = fake.inject_text(ADA, CHAT, &text);
    let feishu = connect(&fake);
    let batch = next_messages(&feishu).await;
    assert_eq!(ids(&batch), [&id]);
    assert_eq!(batch[0].content, Content::Text(text));
    feishu.next_batch().await.unwrap();
    let acks = fake.wait_acks(1, WAIT).await;
    assert_eq!(acks.len(), 1, "one acknowledgement for the whole event");
}

#[tokio::test]
async fn pings_go_out_on_the_service_id_and_a_pong_sets_their_interval() {
    let fake = fake().await;
    // The bootstrap says a minute; the first pong says one second.
    let slow = ClientConfig {
        ping_interval: 60,
        ..ClientConfig::default()
    };
    fake.set_client_config(slow);
    fake.set_pong_config(ClientConfig {
        ping_interval: 1,
        ..slow
    });
    let feishu = feishu_with(&fake, APP_SECRET, Duration::from_millis(100));
    assert!(feishu.next_batch().await.unwrap().is_empty());
    // Pings go on while no next_batch call runs (the core may be storing a batch).
    let started = Instant::now();
    let pings = fake.wait_pings(3, WAIT).await;
    assert!(pings.len() >= 3, "{pings:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for ping in &pings {
        assert_eq!(ping.service, ping.expected_service);
    }
    let gap = pings[2].at - pings[1].at;
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
}

#[tokio::test]
async fn a_server_that_answers_no_ping_counts_as_gone() {
    let fake = fake().await;
    fake.set_client_config(ClientConfig {
        ping_interval: 1,
        ..ClientConfig::default()
    });
    fake.answer_pings(false);
    let feishu = feishu_with(&fake, APP_SECRET, Duration::from_secs(20));
    let started = Instant::now();
    let error = feishu.next_batch().await.unwrap_err();
    assert!(
        matches!(&error, Error::Unreachable { detail, .. } if detail.contains("pings")),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(fake.wait_open_connections(0, WAIT).await);
    // The next call connects anew.
    fake.answer_pings(true);
    let id = fake.inject_text(ADA, CHAT, "still there?");
    assert_eq!(ids(&next_messages(&feishu).await), [&id]);
    assert_eq!(fake.connections_opened(), 2);
}

#[tokio::test]
async fn an_expired_token_is_renewed_and_the_send_goes_through() {
    let fake = fake().await;
    let feishu = connect(&fake);
    feishu
        .send(CHAT, &Outgoing::Text("one".into()))
        .await
        .unwrap();
    let first_token = fake.current_token().unwrap();
    fake.expire_token();
    feishu
        .send(CHAT, &Outgoing::Text("two".into()))
        .await
        .unwrap();
    assert_ne!(fake.current_token().unwrap(), first_token);
    let texts: Vec<String> = fake.sent().into_iter().map(|sent| sent.text).collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(
        fake.requests(),
        ["token", "messages", "messages", "token", "messages"]
    );
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_and_appears_in_no_error() {
    let fake = fake().await;
    let wrong = "dWl2ZkJ2S1NsdGhlV1JPTkdzZWNyZXQ";
    let feishu = feishu_with(&fake, wrong, Duration::from_secs(1));
    let file = FileRef {
        id: "file_v3_x".into(),
        message_id: "om_x".into(),
    };
    let mut errors = vec![
        feishu.check().await.unwrap_err(),
        feishu.next_batch().await.unwrap_err(),
        feishu
            .send(CHAT, &Outgoing::Voice(vec![1, 2, 3]))
            .await
            .unwrap_err(),
        feishu.download(&file).await.unwrap_err(),
    ];
    for error in &errors {
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    }
    assert!(
        errors[0].to_string().contains("app secret invalid"),
        "{}",
        errors[0]
    );

    // With the right secret, failures name neither the secret nor the token.
    let feishu = connect(&fake);
    feishu.check().await.unwrap();
    fake.fail_next("messages", 1, 429);
    errors.push(
        feishu
            .send(CHAT, &Outgoing::Text("x".into()))
            .await
            .unwrap_err(),
    );
    errors.push(
        feishu
            .send("not-a-chat", &Outgoing::Text("x".into()))
            .await
            .unwrap_err(),
    );
    errors.push(feishu.download(&file).await.unwrap_err());
    let token = fake.current_token().unwrap();

    // Nothing listening: the transport errors name nothing secret either.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let http = carapace_http::client_trusting(None, Path::new("-")).unwrap();
    let tls = carapace_http::tls_config_trusting(None, Path::new("-")).unwrap();
    let offline = Feishu::new(
        http,
        tls,
        &format!("http://{address}"),
        APP_ID.into(),
        APP_SECRET.into(),
    )
    .unwrap();
    let error = offline.next_batch().await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    errors.push(error);

    for error in &errors {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(
                !text.contains(wrong) && !text.contains(APP_SECRET),
                "{text}"
            );
            assert!(!text.contains(&token), "{text}");
        }
    }
    assert!(!format!("{feishu:?}").contains(APP_SECRET));
}

#[tokio::test]
async fn text_photos_and_voice_go_out() {
    let fake = fake().await;
    let feishu = connect(&fake);
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &awkward_bytes(9000)].concat();
    let opus = awkward_bytes(40_000);
    feishu
        .send(CHAT, &Outgoing::Text("hello".into()))
        .await
        .unwrap();
    let photo = Outgoing::Photo {
        bytes: png.clone(),
        caption: "the chart".into(),
    };
    feishu.send(ADA, &photo).await.unwrap();
    feishu
        .send(CHAT, &Outgoing::Voice(opus.clone()))
        .await
        .unwrap();

    let sent = fake.wait_sent(4, WAIT).await;
    let kinds: Vec<(&str, &str, &str)> = sent
        .iter()
        .map(|s| {
            (
                s.msg_type.as_str(),
                s.receive_id.as_str(),
                s.receive_id_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("text", CHAT, "chat_id"),
            ("image", ADA, "open_id"),
            ("text", ADA, "open_id"),
            ("audio", CHAT, "chat_id"),
        ]
    );
    assert_eq!(sent[0].text, "hello");
    assert_eq!(sent[1].bytes, png);
    assert_eq!(sent[2].text, "the chart");
    assert_eq!(sent[3].bytes, opus);
    assert_eq!(sent[3].file_name, "voice.opus");
    assert_eq!(
        fake.requests(),
        [
            "token", "messages", "images", "messages", "messages", "files", "messages"
        ]
    );

    // A long text goes out in pieces the server takes; an empty one is refused here.
    let long: String = (0..4000).map(|i| format!("line {i}: 😀 Grüße\n")).collect();
    feishu
        .send(CHAT, &Outgoing::Text(long.clone()))
        .await
        .unwrap();
    let pieces: Vec<String> = fake.sent()[4..].iter().map(|s| s.text.clone()).collect();
    assert!(pieces.len() >= 2, "{} pieces", pieces.len());
    assert_eq!(pieces.concat(), long);
    let empty = feishu.send(CHAT, &Outgoing::Text(" \n".into())).await;
    assert!(matches!(empty, Err(Error::Rejected { .. })), "{empty:?}");
    // Feishu has no command menu to set: nothing is called.
    let before = fake.requests().len();
    feishu
        .set_commands(&[("status".into(), "How the box is doing".into())])
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn a_choice_goes_out_as_a_card_and_a_press_comes_back_as_a_button() {
    let fake = fake().await;
    let feishu = connect(&fake);
    let choice = Outgoing::Choice {
        text: "Run github__create_issue?".into(),
        buttons: vec![
            Button {
                label: "Allow".into(),
                data: "approve:7".into(),
            },
            Button {
                label: "Deny".into(),
                data: "deny:7".into(),
            },
        ],
    };
    feishu.send(CHAT, &choice).await.unwrap();
    let sent = fake.wait_sent(1, WAIT).await;
    assert_eq!(
        (sent[0].msg_type.as_str(), sent[0].receive_id.as_str()),
        ("interactive", CHAT)
    );
    assert_eq!(
        sent[0].buttons,
        [
            ("Allow".to_string(), "approve:7".to_string()),
            ("Deny".to_string(), "deny:7".to_string())
        ]
    );
    assert!(
        sent[0]
            .content
            .to_string()
            .contains("Run github__create_issue?"),
        "{}",
        sent[0].content
    );

    // The owner presses "Allow": the press comes in as a button with its chat and sender.
    let press = fake.inject_button_press(ADA, CHAT, "approve:7");
    let batch = next_messages(&feishu).await;
    assert_eq!(ids(&batch), [&press]);
    assert_eq!(
        (batch[0].chat.as_str(), batch[0].sender.as_str()),
        (CHAT, ADA)
    );
    assert_eq!(
        batch[0].content,
        Content::Button {
            data: "approve:7".into()
        }
    );
    // Acknowledged like an event, by the next call, with the empty callback answer.
    assert!(fake.acks().is_empty());
    let feishu = feishu.with_batch_wait(Duration::from_millis(300));
    assert!(feishu.next_batch().await.unwrap().is_empty());
    let acks = fake.wait_acks(1, WAIT).await;
    assert_eq!(
        (acks[0].message_id.as_str(), acks[0].code),
        (press.as_str(), Some(200))
    );
    assert_eq!(acks[0].data, Some(serde_json::json!({})));

    // A press in a `card` frame reads the same; one on an element that is not ours (no
    // string data) is acknowledged at once and reaches no one.
    fake.callbacks_in_card_frames(true);
    let foreign = fake.inject_card_action(ADA, CHAT, serde_json::json!({"n": 1}));
    let deny = fake.inject_button_press(ADA, CHAT, "deny:7");
    let batch = next_messages(&feishu).await;
    assert_eq!(ids(&batch), [&deny]);
    assert_eq!(
        batch[0].content,
        Content::Button {
            data: "deny:7".into()
        }
    );
    // Written by the connection's task: wait for it.
    fake.wait_acks(2, WAIT).await;
    assert!(fake.acked(&foreign));
    assert!(!fake.acked(&deny));
    assert!(feishu.next_batch().await.unwrap().is_empty());
    fake.wait_acks(3, WAIT).await;
    assert!(fake.acked(&deny));
}

#[tokio::test]
async fn failed_sends_are_classified() {
    let fake = fake().await;
    let feishu = connect(&fake);
    let text = Outgoing::Text("hi".into());
    fake.fail_next("messages", 1, 429);
    let limited = feishu.send(CHAT, &text).await;
    assert!(
        matches!(limited, Err(Error::RateLimited { retry_after, .. }) if retry_after == Duration::from_secs(1)),
        "{limited:?}"
    );
    fake.fail_next("messages", 1, 502);
    let gateway = feishu.send(CHAT, &text).await;
    assert!(
        matches!(gateway, Err(Error::Unreachable { .. })),
        "{gateway:?}"
    );
    fake.fail_next("images", 1, 500);
    let upload = feishu
        .send(
            CHAT,
            &Outgoing::Photo {
                bytes: vec![1],
                caption: String::new(),
            },
        )
        .await;
    assert!(
        matches!(upload, Err(Error::Unreachable { .. })),
        "{upload:?}"
    );
    let refused = feishu.send("no-such-chat", &text).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("230001")),
        "{refused:?}"
    );
    feishu.send(CHAT, &text).await.unwrap();
    assert_eq!(fake.sent().len(), 1);
    // Feishu recalls only a bot's own messages: deleting a person's is refused for good.
    let delete = Outgoing::Delete {
        message_id: "om_person".into(),
    };
    let refused = feishu.send(CHAT, &delete).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("only its own")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn files_over_20_mb_are_refused_while_downloading() {
    let fake = fake().await;
    let feishu = connect(&fake);
    fake.inject_file(ADA, CHAT, "big.iso", vec![7; DOWNLOAD_LIMIT as usize + 1]);
    let message = next_messages(&feishu).await.remove(0);
    let file = file_of(&message.content);
    // Content-Length says it is too big.
    let refused = feishu.download(&file).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("20 MB")),
        "{refused:?}"
    );
    // No Content-Length: cut off while reading.
    fake.serve_downloads_unsized(true);
    let refused = feishu.download(&file).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("20 MB")),
        "{refused:?}"
    );
    // Exactly at the limit is fine, counted while reading too.
    fake.inject_file(ADA, CHAT, "ok.iso", vec![9; DOWNLOAD_LIMIT as usize]);
    let message = next_messages(&feishu).await.remove(0);
    let bytes = feishu.download(&file_of(&message.content)).await.unwrap();
    assert_eq!(bytes.len() as u64, DOWNLOAD_LIMIT);
    // A key from another message is refused by the server.
    let mut wrong = file_of(&message.content);
    wrong.message_id = file.message_id.clone();
    let refused = feishu.download(&wrong).await;
    assert!(
        matches!(refused, Err(Error::Rejected { .. })),
        "{refused:?}"
    );
    let odd = FileRef {
        id: "../x".into(),
        message_id: "om_1".into(),
    };
    assert!(matches!(
        feishu.download(&odd).await,
        Err(Error::Rejected { .. })
    ));
}

/// Runs the receiver, sending each stored batch into the returned channel, with waits in
/// milliseconds; the console lines go into `lines`.
fn spawn_receiver(
    feishu: Arc<Feishu>,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::sync::mpsc::UnboundedReceiver<Vec<Incoming>> {
    let (stored, batches) = tokio::sync::mpsc::unbounded_channel();
    let fast = Backoff::new(
        Duration::from_millis(5),
        Duration::from_millis(20),
        Duration::from_millis(5),
    );
    tokio::spawn(async move {
        run_receiver_with(
            &*feishu,
            |batch| {
                let _ = stored.send(batch);
                std::future::ready(Ok(()))
            },
            fast,
            |line: &str| lines.lock().unwrap().push(line.to_string()),
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
    });
    batches
}

async fn stored(
    batches: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Incoming>>,
) -> Vec<Incoming> {
    tokio::time::timeout(Duration::from_secs(10), batches.recv())
        .await
        .expect("nothing was stored")
        .unwrap()
}

#[tokio::test]
async fn the_receiver_survives_a_dropped_connection_and_delivers_afterwards() {
    let fake = fake().await;
    let feishu = Arc::new(feishu_with(&fake, APP_SECRET, Duration::from_millis(500)));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut batches = spawn_receiver(Arc::clone(&feishu), Arc::clone(&lines));
    let first = fake.inject_text(ADA, CHAT, "before");
    assert_eq!(ids(&stored(&mut batches).await), [&first]);

    assert!(fake.wait_open_connections(1, WAIT).await);
    assert_eq!(fake.drop_connections(), 1);
    let second = fake.inject_text(ADA, CHAT, "after");
    let mut batch = stored(&mut batches).await;
    // The first may come again if the drop beat its acknowledgement; the core drops it.
    batch.retain(|message| message.id != first);
    assert_eq!(ids(&batch), [&second]);
    assert!(fake.connections_opened() >= 2);
    let lines = lines.lock().unwrap().clone();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("feishu: connected"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("feishu: unreachable (")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("feishu: connected"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn the_receiver_waits_out_a_failing_bootstrap() {
    let fake = fake().await;
    fake.fail_next("endpoint", 2, 502);
    let feishu = Arc::new(feishu_with(&fake, APP_SECRET, Duration::from_millis(500)));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut batches = spawn_receiver(Arc::clone(&feishu), Arc::clone(&lines));
    let id = fake.inject_text(ADA, CHAT, "hi");
    assert_eq!(ids(&stored(&mut batches).await), [&id]);
    let endpoint_calls = fake
        .requests()
        .iter()
        .filter(|name| *name == "endpoint")
        .count();
    assert_eq!(endpoint_calls, 3);
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "one line for two failures: {lines:?}");
    assert!(
        lines[0].starts_with("feishu: unreachable (the long connection's endpoint: HTTP 502"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "feishu: connected");
}

#[tokio::test]
async fn a_refused_handshake_is_classified_by_its_headers() {
    let fake = fake().await;
    let feishu = connect(&fake);
    fake.fail_next("websocket", 1, 403);
    let forbidden = feishu.next_batch().await.unwrap_err();
    assert!(
        matches!(&forbidden, Error::Unauthorized { detail, .. } if detail.contains("status 403")),
        "{forbidden:?}"
    );
    fake.fail_next("websocket", 1, 503);
    let busy = feishu.next_batch().await.unwrap_err();
    assert!(matches!(busy, Error::Unreachable { .. }), "{busy:?}");
    let id = fake.inject_text(ADA, CHAT, "through at last");
    assert_eq!(ids(&next_messages(&feishu).await), [&id]);
}

#[tokio::test]
async fn the_channel_works_over_https_and_wss_with_the_image_s_extra_ca() {
    let dir = tempfile::tempdir().unwrap();
    carapace_fakes::test_ca::make(dir.path(), &["127.0.0.1"]);
    let acceptor = carapace_fakes::server::tls_acceptor(
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    )
    .unwrap();
    let fake = FakeFeishu::start("127.0.0.1:0".parse().unwrap(), Some(acceptor))
        .await
        .unwrap();
    assert!(fake.domain().starts_with("https://"));
    let ca_path = dir.path().join("ca.pem");
    let ca = std::fs::read(&ca_path).unwrap();
    let http = carapace_http::client_trusting(Some(&ca), &ca_path).unwrap();
    let tls = carapace_http::tls_config_trusting(Some(&ca), &ca_path).unwrap();
    let feishu = Feishu::new(http, tls, &fake.domain(), APP_ID.into(), APP_SECRET.into())
        .unwrap()
        .with_batch_wait(WAIT);
    assert_eq!(feishu.check().await.unwrap(), BOT_NAME);
    let id = fake.inject_text(ADA, CHAT, "over TLS");
    assert_eq!(ids(&next_messages(&feishu).await), [&id]);
    feishu
        .send(CHAT, &Outgoing::Text("back".into()))
        .await
        .unwrap();
    assert_eq!(fake.sent()[0].text, "back");

    // The HTTPS client trusts the CA but the WebSocket does not: the long connection fails.
    let http = carapace_http::client_trusting(Some(&ca), &ca_path).unwrap();
    let public_only = carapace_http::tls_config_trusting(None, Path::new("-")).unwrap();
    let untrusting = Feishu::new(
        http,
        public_only,
        &fake.domain(),
        APP_ID.into(),
        APP_SECRET.into(),
    )
    .unwrap();
    untrusting.check().await.unwrap();
    let error = untrusting.next_batch().await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
}
