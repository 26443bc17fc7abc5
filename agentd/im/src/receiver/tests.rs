//! The receiver's decisions against a scripted channel: what it calls when, and what it says.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::{ChannelKind, Content, FileRef, Outgoing};

/// Answers `next_batch` from a script, then waits for ever.
struct Scripted {
    script: Mutex<VecDeque<Result<Vec<Incoming>, Error>>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(script: Vec<Result<Vec<Incoming>, Error>>) -> Scripted {
        Scripted {
            script: Mutex::new(script.into()),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Channel for Scripted {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }
    async fn check(&self) -> Result<String, Error> {
        Ok("bot".into())
    }
    async fn next_batch(&self) -> Result<Vec<Incoming>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
    async fn send(&self, _: &str, _: &Outgoing) -> Result<(), Error> {
        Ok(())
    }
    async fn download(&self, _: &FileRef) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }
    async fn set_commands(&self, _: &[(String, String)]) -> Result<(), Error> {
        Ok(())
    }
}

fn message(id: &str) -> Incoming {
    Incoming {
        channel: ChannelKind::Telegram,
        id: id.into(),
        chat: "1".into(),
        sender: "1".into(),
        message_id: String::new(),
        sender_name: "A".into(),
        content: Content::Text("hi".into()),
    }
}

fn unreachable() -> Error {
    Error::Unreachable {
        channel: "telegram",
        detail: "HTTP 502 Bad Gateway".into(),
    }
}

fn fast() -> Backoff {
    let millisecond = Duration::from_millis(1);
    Backoff::new(millisecond, 4 * millisecond, millisecond)
}

/// Runs the receiver until `stop` says so (checked after every store attempt) or 5 s pass;
/// returns the console lines.
async fn run_until(
    channel: &Scripted,
    mut store: impl FnMut(Vec<Incoming>) -> Result<(), String>,
    stop: impl Fn() -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let (done, finished) = tokio::sync::watch::channel(false);
    let connected = std::sync::atomic::AtomicBool::new(false);
    let receiver = run_receiver_with(
        channel,
        |batch| {
            let result = store(batch);
            if stop() {
                let _ = done.send(true);
            }
            std::future::ready(result)
        },
        fast(),
        |line: &str| lines.push(line.to_string()),
        &connected,
    );
    let mut finished = finished;
    tokio::select! {
        never = receiver => match never {},
        _ = finished.wait_for(|done| *done) => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => panic!("the receiver did not finish"),
    }
    lines
}

#[tokio::test]
async fn a_batch_is_stored_before_the_next_poll_and_a_failing_store_is_retried() {
    let channel = Scripted::new(vec![Ok(vec![message("1")]), Ok(vec![message("2")])]);
    let mut attempts = 0;
    let stored = Mutex::new(Vec::new());
    let lines = run_until(
        &channel,
        |batch| {
            // The second poll would acknowledge batch 1: it must not happen before the store.
            if batch[0].id == "1" {
                assert_eq!(channel.calls.load(Ordering::SeqCst), 1);
            }
            attempts += 1;
            if attempts <= 3 {
                return Err("disk full".into());
            }
            stored.lock().unwrap().push(batch[0].id.clone());
            Ok(())
        },
        || stored.lock().unwrap().len() == 2,
    )
    .await;
    assert_eq!(*stored.lock().unwrap(), ["1", "2"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], "telegram: connected");
    assert!(
        lines[1].starts_with("telegram: storing 1 message(s) failed (disk full); retrying in ")
    );
    assert_eq!(lines[2], "telegram: stored the waiting messages");
}

#[tokio::test]
async fn one_line_per_state_change_not_per_attempt() {
    let rate_limited = Error::RateLimited {
        channel: "telegram",
        retry_after: Duration::from_millis(2),
        detail: "getUpdates: Too Many Requests".into(),
    };
    let channel = Scripted::new(vec![
        Err(unreachable()),
        Err(unreachable()),
        Err(unreachable()),
        Ok(vec![]),
        Err(rate_limited),
        Err(unreachable()),
        Ok(vec![message("1")]),
    ]);
    let lines = run_until(&channel, |_| Ok(()), || true).await;
    let expected_starts = [
        "telegram: unreachable (HTTP 502 Bad Gateway); retrying in ",
        "telegram: connected",
        "telegram: rate limited (getUpdates: Too Many Requests); retrying in 2 ms",
        "telegram: unreachable (HTTP 502 Bad Gateway); retrying in ",
        "telegram: connected",
    ];
    assert_eq!(lines.len(), expected_starts.len(), "{lines:?}");
    for (line, start) in lines.iter().zip(expected_starts) {
        assert!(
            line.starts_with(start),
            "{line:?} does not start with {start:?}"
        );
    }
}

#[test]
fn waits_read_well() {
    assert_eq!(show(Duration::from_millis(250)), "250 ms");
    assert_eq!(show(Duration::from_millis(4400)), "4 s");
    assert_eq!(show(Duration::from_secs(300)), "300 s");
}
