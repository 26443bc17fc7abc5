//! The Telegram channel against the fake Bot API over real HTTP on 127.0.0.1 (and once over
//! HTTPS with a throwaway CA): messages in, replies out, files both ways, acknowledgement
//! across a crash, and the failures the real API produces.

use std::path::Path;
use std::time::{Duration, Instant};

use carapace_fakes::telegram::{BOT_USERNAME, FakeTelegram, SentKind, TOKEN};
use carapace_im::{Backoff, Channel, Content, Error, FileRef, Incoming, Outgoing, Telegram};
use carapace_im::{run_receiver_with, telegram::DOWNLOAD_LIMIT};

const USER: i64 = 5_551_234;
const GROUP: i64 = -1_001_234_567;

async fn fake() -> FakeTelegram {
    FakeTelegram::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn telegram_with(fake: &FakeTelegram, token: &str, poll_timeout: Duration) -> Telegram {
    let http = carapace_http::client_trusting(None, Path::new("-")).unwrap();
    Telegram::new(http, &fake.api_base(), token.to_string(), poll_timeout).unwrap()
}

fn connect(fake: &FakeTelegram) -> Telegram {
    telegram_with(fake, TOKEN, Duration::from_secs(5))
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
async fn text_voice_photo_and_document_come_in() {
    let fake = fake().await;
    let telegram = connect(&fake);
    assert_eq!(telegram.check().await.unwrap(), BOT_USERNAME);
    let ogg = awkward_bytes(3000);
    let jpeg = awkward_bytes(5000);
    let pdf = awkward_bytes(7000);
    let text = fake.inject_text(USER, USER, "Ada", "/start pairing-code");
    let voice = fake.inject_voice(USER, USER, "Ada", ogg.clone(), 3);
    let photo = fake.inject_photo(USER, GROUP, "Ada", jpeg.clone(), "a cat");
    let document = fake.inject_document(USER, USER, "Ada", "notes.pdf", pdf.clone(), "read");
    let sticker = fake.inject_message(
        USER,
        USER,
        "Ada",
        serde_json::json!({"sticker": {"file_id": "s"}}),
    );
    let mut edited = serde_json::Map::new();
    edited.insert(
        "edited_message".into(),
        serde_json::json!({"message_id": 1}),
    );
    let skipped = fake.inject_update(edited);

    let batch = telegram.next_batch().await.unwrap();
    let ids: Vec<String> = [text, voice, photo, document, sticker]
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(batch.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(
        batch[0].content,
        Content::Text("/start pairing-code".into())
    );
    assert_eq!(
        (batch[0].chat.as_str(), batch[0].sender.as_str()),
        ("5551234", "5551234")
    );
    assert_eq!(batch[0].sender_name, "Ada");
    assert!(matches!(
        batch[1].content,
        Content::Voice { seconds: 3, .. }
    ));
    assert_eq!(batch[2].chat, GROUP.to_string());
    assert!(matches!(&batch[2].content, Content::Photo { caption, .. } if caption == "a cat"));
    assert!(matches!(&batch[3].content,
        Content::Document { name, caption, .. } if name == "notes.pdf" && caption == "read"));
    assert_eq!(batch[4].content, Content::Unsupported("sticker".into()));
    assert_eq!(
        fake.allowed_updates(),
        Some(serde_json::json!(["message", "callback_query"]))
    );

    // The largest photo size is the one downloaded, and every file arrives intact.
    for (message, bytes) in batch[1..4].iter().zip([&ogg, &jpeg, &pdf]) {
        assert_eq!(
            &telegram.download(&file_of(&message.content)).await.unwrap(),
            bytes
        );
    }

    // The next poll acknowledges all of them, the skipped update included.
    let later = fake.inject_text(USER, USER, "Ada", "later");
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, later.to_string());
    assert_eq!(fake.confirmed_offset(), skipped + 1);
}

#[tokio::test]
async fn a_long_poll_waits_for_a_message_and_ends_empty_at_its_timeout() {
    let fake = fake().await;
    let telegram = telegram_with(&fake, TOKEN, Duration::from_secs(1));
    // The first poll is short: the link is known to be up at once.
    let started = Instant::now();
    assert!(telegram.next_batch().await.unwrap().is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the first poll waited {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert!(telegram.next_batch().await.unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    let telegram = telegram_with(&fake, TOKEN, Duration::from_secs(30));
    assert!(telegram.next_batch().await.unwrap().is_empty());
    let injector = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        injector.inject_text(USER, USER, "Ada", "hello");
    });
    let started = Instant::now();
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_batch_comes_again_after_a_crash_and_never_once_acknowledged() {
    let fake = fake().await;
    let first = fake.inject_text(USER, USER, "Ada", "one");

    let telegram = connect(&fake);
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch[0].id, first.to_string());
    let delivered = fake.delivered_at(first).unwrap();
    // The core crashes before storing: no further call acknowledges the batch.
    drop(telegram);

    let telegram = connect(&fake);
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, first.to_string());
    assert_eq!(
        fake.delivered_at(first),
        Some(delivered),
        "the first delivery is kept"
    );

    // Stored this time; the next call acknowledges it.
    let second = fake.inject_text(USER, USER, "Ada", "two");
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, second.to_string());
    assert_eq!(fake.confirmed_offset(), first + 1);
    drop(telegram);

    // After another crash only the unacknowledged second message comes again.
    let telegram = connect(&fake);
    let batch = telegram.next_batch().await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [second.to_string()]);
}

#[tokio::test]
async fn a_long_reply_is_split_into_messages_telegram_accepts() {
    let fake = fake().await;
    let telegram = connect(&fake);
    let text: String = (0..400)
        .map(|i| format!("line {i}: das Grüßen 😀 is the point of this line\n"))
        .collect();
    telegram
        .send("5551234", &Outgoing::Text(text.clone()))
        .await
        .unwrap();
    let sent = fake.sent();
    assert!(sent.len() >= 5, "{} messages", sent.len());
    for message in &sent {
        assert_eq!(message.chat_id, "5551234");
        assert_eq!(message.kind, SentKind::Text);
        assert!(message.text.encode_utf16().count() <= 4096);
        assert!(message.text.ends_with('\n'), "cut inside a line");
    }
    let joined: String = sent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(joined, text);

    let empty = telegram
        .send("5551234", &Outgoing::Text(" \n".into()))
        .await;
    assert!(matches!(empty, Err(Error::Rejected { .. })), "{empty:?}");
}

/// A person's message (one that carried a secret) is deleted by the id it came in with; one
/// the server does not know is refused for good, not retried.
#[tokio::test]
async fn a_persons_message_is_deleted_by_its_message_id() {
    let fake = fake().await;
    let telegram = connect(&fake);
    fake.inject_text(USER, USER, "Ada", "/secret weather KEY abc123");
    let batch = telegram.next_batch().await.unwrap();
    let delete = Outgoing::Delete {
        message_id: batch[0].message_id.clone(),
    };
    telegram.send(&USER.to_string(), &delete).await.unwrap();
    let deleted = fake.deleted();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["text"], "/secret weather KEY abc123");
    let again = telegram.send(&USER.to_string(), &delete).await;
    assert!(
        matches!(&again, Err(Error::Rejected { detail, .. }) if detail.contains("not found")),
        "{again:?}"
    );
}

#[tokio::test]
async fn voice_and_photo_uploads_arrive_intact() {
    let fake = fake().await;
    let telegram = connect(&fake);
    let ogg = awkward_bytes(40_000);
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &awkward_bytes(9000)].concat();
    telegram
        .send("-100777", &Outgoing::Voice(ogg.clone()))
        .await
        .unwrap();
    let photo = Outgoing::Photo {
        bytes: png.clone(),
        caption: "the chart".into(),
    };
    telegram.send("-100777", &photo).await.unwrap();
    // A caption over Telegram's 1024 follows the photo as text.
    let long_caption = "word ".repeat(300);
    let photo = Outgoing::Photo {
        bytes: png.clone(),
        caption: long_caption.clone(),
    };
    telegram.send("-100777", &photo).await.unwrap();

    let sent = fake.wait_sent(4, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 4);
    assert_eq!((sent[0].kind, &sent[0].bytes), (SentKind::Voice, &ogg));
    assert_eq!(sent[0].chat_id, "-100777");
    assert_eq!((sent[1].kind, &sent[1].bytes), (SentKind::Photo, &png));
    assert_eq!(sent[1].text, "the chart");
    assert_eq!(sent[1].file_name, "photo.png");
    assert_eq!((sent[2].kind, sent[2].text.as_str()), (SentKind::Photo, ""));
    assert_eq!(
        (sent[3].kind, sent[3].text.trim()),
        (SentKind::Text, long_caption.trim())
    );
}

#[tokio::test]
async fn files_over_20_mb_are_refused_before_and_while_downloading() {
    let fake = fake().await;
    let telegram = connect(&fake);
    fake.inject_document(USER, USER, "Ada", "big.iso", vec![1; 1000], "");
    let message = telegram.next_batch().await.unwrap().remove(0);
    let file = file_of(&message.content);

    // getFile says it is too big: the download is never started.
    fake.report_file_size(&file.id, Some(DOWNLOAD_LIMIT + 1));
    let refused = telegram.download(&file).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("20 MB")),
        "{refused:?}"
    );
    assert!(!fake.requests().contains(&"file".to_string()));

    // A server that names no size, and sends no Content-Length, is cut off while reading.
    fake.inject_document(
        USER,
        USER,
        "Ada",
        "bigger.iso",
        vec![7; DOWNLOAD_LIMIT as usize + 1],
        "",
    );
    let message = telegram.next_batch().await.unwrap().remove(0);
    let file = file_of(&message.content);
    fake.report_file_size(&file.id, None);
    fake.serve_downloads_unsized(true);
    let refused = telegram.download(&file).await;
    assert!(
        matches!(&refused, Err(Error::Rejected { detail, .. }) if detail.contains("20 MB")),
        "{refused:?}"
    );
    assert_eq!(fake.requests().last().map(String::as_str), Some("file"));

    // Exactly at the limit is fine.
    fake.inject_document(
        USER,
        USER,
        "Ada",
        "ok.iso",
        vec![9; DOWNLOAD_LIMIT as usize],
        "",
    );
    let message = telegram.next_batch().await.unwrap().remove(0);
    let bytes = telegram.download(&file_of(&message.content)).await.unwrap();
    assert_eq!(bytes.len() as u64, DOWNLOAD_LIMIT);
}

#[tokio::test]
async fn a_refused_token_is_unauthorized_and_appears_in_no_error() {
    let fake = fake().await;
    let wrong = "4839574812:AAHthe-WRONG-secret-0123456789abcdefgh";
    let telegram = telegram_with(&fake, wrong, Duration::from_secs(1));
    let mut errors = vec![
        telegram.check().await.unwrap_err(),
        telegram.next_batch().await.unwrap_err(),
        telegram
            .download(&FileRef {
                id: "x".into(),
                message_id: String::new(),
            })
            .await
            .unwrap_err(),
        telegram
            .send("1", &Outgoing::Voice(vec![1, 2, 3]))
            .await
            .unwrap_err(),
    ];
    for error in &errors {
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    }

    // Nothing listening: the transport error names no token either.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let http = carapace_http::client_trusting(None, Path::new("-")).unwrap();
    let base = format!("http://{address}");
    let offline = Telegram::new(http, &base, TOKEN.into(), Duration::from_secs(1)).unwrap();
    let error = offline.next_batch().await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    errors.push(error);

    for error in &errors {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
            assert!(!text.contains("secret") && !text.contains("AAH"), "{text}");
        }
    }
    assert!(!format!("{telegram:?}").contains("secret"));
}

#[tokio::test]
async fn a_webhook_is_removed_and_polling_goes_on() {
    let fake = fake().await;
    fake.set_webhook("https://example.com/hook");
    let id = fake.inject_text(USER, USER, "Ada", "hi");
    let telegram = connect(&fake);
    let batch = telegram.next_batch().await.unwrap();
    assert_eq!(batch[0].id, id.to_string());
    assert_eq!(fake.webhook(), None);
    assert_eq!(
        fake.requests(),
        ["getUpdates", "deleteWebhook", "getUpdates"]
    );
}

#[tokio::test]
async fn the_command_menu_is_set() {
    let fake = fake().await;
    let telegram = connect(&fake);
    let commands = vec![
        ("status".to_string(), "How the box is doing".to_string()),
        ("users".to_string(), "Who may talk to the agent".to_string()),
    ];
    telegram.set_commands(&commands).await.unwrap();
    assert_eq!(fake.commands(), commands);
    let bad = vec![("Not A Command".to_string(), "x".to_string())];
    let refused = telegram.set_commands(&bad).await;
    assert!(
        matches!(refused, Err(Error::Rejected { .. })),
        "{refused:?}"
    );
}

/// Runs the receiver until it stored one batch (or 10 s pass): the batch, the console lines,
/// and how long it took.
async fn receive_once(telegram: &Telegram) -> (Vec<Incoming>, Vec<String>, Duration) {
    let started = Instant::now();
    let (stored, mut batches) = tokio::sync::mpsc::unbounded_channel();
    let mut lines = Vec::new();
    let fast = Backoff::new(
        Duration::from_millis(5),
        Duration::from_millis(20),
        Duration::from_millis(5),
    );
    let connected = std::sync::atomic::AtomicBool::new(false);
    let receiver = run_receiver_with(
        telegram,
        |batch| {
            let _ = stored.send(batch);
            std::future::ready(Ok(()))
        },
        fast,
        |line: &str| lines.push(line.to_string()),
        &connected,
    );
    let batch = tokio::select! {
        never = receiver => match never {},
        batch = batches.recv() => batch.unwrap(),
        _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("nothing was stored"),
    };
    (batch, lines, started.elapsed())
}

#[tokio::test]
async fn the_receiver_waits_as_long_as_a_429_says() {
    let fake = fake().await;
    fake.rate_limit_next("getUpdates", 1, 1);
    let id = fake.inject_text(USER, USER, "Ada", "hi");
    let telegram = connect(&fake);
    let (batch, lines, took) = receive_once(&telegram).await;
    assert_eq!(batch[0].id, id.to_string());
    assert!(took >= Duration::from_secs(1), "retried after {took:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("telegram: rate limited (getUpdates: Too Many Requests"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("retrying in 1 s"), "{lines:?}");
    assert_eq!(lines[1], "telegram: connected");
}

#[tokio::test]
async fn the_receiver_survives_three_gateway_errors_and_delivers() {
    let fake = fake().await;
    fake.fail_next("getUpdates", 3, 502);
    let id = fake.inject_text(USER, USER, "Ada", "hi");
    let telegram = connect(&fake);
    let (batch, lines, _) = receive_once(&telegram).await;
    assert_eq!(batch[0].id, id.to_string());
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|m| *m == "getUpdates")
            .count(),
        4
    );
    assert_eq!(lines.len(), 2, "one line for three failures: {lines:?}");
    assert!(
        lines[0]
            .starts_with("telegram: unreachable (getUpdates: HTTP 502 Bad Gateway); retrying in "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "telegram: connected");
}

#[tokio::test]
async fn the_channel_works_over_https_with_the_image_s_extra_ca() {
    let dir = tempfile::tempdir().unwrap();
    carapace_fakes::test_ca::make(dir.path(), &["127.0.0.1"]);
    let acceptor = carapace_fakes::server::tls_acceptor(
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    )
    .unwrap();
    let fake = FakeTelegram::start("127.0.0.1:0".parse().unwrap(), Some(acceptor))
        .await
        .unwrap();
    assert!(fake.api_base().starts_with("https://"));
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let http = carapace_http::client_trusting(Some(&ca), &dir.path().join("ca.pem")).unwrap();
    let telegram =
        Telegram::new(http, &fake.api_base(), TOKEN.into(), Duration::from_secs(5)).unwrap();
    assert_eq!(telegram.check().await.unwrap(), BOT_USERNAME);
    let id = fake.inject_text(USER, USER, "Ada", "over TLS");
    assert_eq!(telegram.next_batch().await.unwrap()[0].id, id.to_string());
    telegram
        .send("5551234", &Outgoing::Text("back".into()))
        .await
        .unwrap();
    assert_eq!(fake.sent()[0].text, "back");

    // Without the CA the same server is refused.
    let public_only = carapace_http::client_trusting(None, Path::new("-")).unwrap();
    let untrusting = Telegram::new(
        public_only,
        &fake.api_base(),
        TOKEN.into(),
        Duration::from_secs(5),
    )
    .unwrap();
    let error = untrusting.check().await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
}
