//! The loop that feeds a channel's messages into agentd's durable inbox, for as long as the
//! daemon runs.
//!
//! A batch is acknowledged to the IM server by the next `next_batch` call, so that call waits
//! until the batch is stored: a store that fails is retried (with backoff) and `next_batch` is
//! not called in between. A lost connection is retried with [`Backoff`]. The console gets one
//! line per change of state (connected, unreachable, rate limited, …), not one per attempt: a
//! box offline for a day must not fill its log with the same line.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Backoff, Channel, Error, Incoming};

/// Receives from `channel` for ever, handing each non-empty batch to `store`, with the standard
/// backoff and state lines on stderr (the console). `connected` says whether the last call to
/// the IM server worked (the update service's health check asks).
pub async fn run_receiver<C, F, Fut>(channel: &C, store: F, connected: &AtomicBool) -> !
where
    C: Channel,
    F: FnMut(Vec<Incoming>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let console = |line: &str| eprintln!("{line}");
    run_receiver_with(channel, store, Backoff::standard(), console, connected).await
}

/// [`run_receiver`] with the waits and the console chosen by the caller (tests pass a backoff
/// in milliseconds and collect the lines).
pub async fn run_receiver_with<C, F, Fut, L>(
    channel: &C,
    mut store: F,
    mut backoff: Backoff,
    mut console: L,
    connected: &AtomicBool,
) -> !
where
    C: Channel,
    F: FnMut(Vec<Incoming>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
    L: FnMut(&str),
{
    let name = channel.kind().name();
    let mut store_backoff = backoff.clone();
    let mut link = Link::Starting;
    loop {
        match channel.next_batch().await {
            Ok(batch) => {
                backoff.reset();
                connected.store(true, Ordering::Relaxed);
                if link != Link::Connected {
                    console(&format!("{name}: connected"));
                    link = Link::Connected;
                }
                if !batch.is_empty() {
                    store_batch(name, &mut store, batch, &mut store_backoff, &mut console).await;
                }
            }
            Err(error) => {
                connected.store(false, Ordering::Relaxed);
                let wait = backoff.after(&error);
                let failing = Link::of(&error);
                if link != failing {
                    console(&format!(
                        "{name}: {}; retrying in {}",
                        describe(&error),
                        show(wait)
                    ));
                    link = failing;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Stores `batch`, retrying until the store takes it.
async fn store_batch<F, Fut, L>(
    name: &str,
    store: &mut F,
    batch: Vec<Incoming>,
    backoff: &mut Backoff,
    console: &mut L,
) where
    F: FnMut(Vec<Incoming>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
    L: FnMut(&str),
{
    let mut failed = false;
    loop {
        match store(batch.clone()).await {
            Ok(()) => {
                if failed {
                    console(&format!("{name}: stored the waiting messages"));
                }
                backoff.reset();
                return;
            }
            Err(reason) => {
                let wait = backoff.next_failure();
                if !failed {
                    let count = batch.len();
                    console(&format!(
                        "{name}: storing {count} message(s) failed ({reason}); retrying in {}",
                        show(wait)
                    ));
                    failed = true;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The state the console last heard of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Starting,
    Connected,
    Unauthorized,
    RateLimited,
    Rejected,
    Unreachable,
    Unreadable,
}

impl Link {
    fn of(error: &Error) -> Link {
        match error {
            Error::Unauthorized { .. } => Link::Unauthorized,
            Error::RateLimited { .. } => Link::RateLimited,
            Error::Rejected { .. } => Link::Rejected,
            Error::Unreachable { .. } => Link::Unreachable,
            Error::Protocol { .. } => Link::Unreadable,
        }
    }
}

fn describe(error: &Error) -> String {
    match error {
        Error::Unauthorized { detail, .. } => {
            format!("credentials refused ({detail}); change them in /settings")
        }
        Error::RateLimited { detail, .. } => format!("rate limited ({detail})"),
        Error::Rejected { detail, .. } => format!("request refused ({detail})"),
        Error::Unreachable { detail, .. } => format!("unreachable ({detail})"),
        Error::Protocol { detail, .. } => format!("unreadable answer ({detail})"),
    }
}

/// "4 s", or "250 ms" below a second (jittered waits often are).
fn show(wait: Duration) -> String {
    match wait < Duration::from_secs(1) {
        true => format!("{} ms", wait.as_millis()),
        false => format!("{:.0} s", wait.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests;
