//! The tasks that talk to the IM servers: one receiver per channel of the current links
//! (replaced when the links change) and the outbox that sends stored replies in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use carapace_im::Channel;
use carapace_im::receiver::run_receiver;
use tokio::sync::{Notify, watch};

use super::{AbortOnDrop, IDLE_WAKE, now};
use crate::commands::MENU;
use crate::links::Links;
use crate::store::Store;

/// The outbox's waits after a failed send: doubling from the first to the last.
const OUTBOX_RETRY_FIRST: Duration = Duration::from_secs(1);
const OUTBOX_RETRY_MAX: Duration = Duration::from_secs(60);

/// Whether each channel's last call to its IM server worked.
#[derive(Default)]
pub struct LinkState {
    telegram: AtomicBool,
    feishu: AtomicBool,
}

impl LinkState {
    /// Some channel reaches its server: the owner can talk to the box.
    pub fn any_connected(&self) -> bool {
        self.telegram.load(Ordering::Relaxed) || self.feishu.load(Ordering::Relaxed)
    }
}

/// One receiver task per channel of the current links, replaced when the links change.
pub(super) async fn supervise_receivers(
    mut links: watch::Receiver<Option<Arc<Links>>>,
    store: Arc<Store>,
    inbox_filled: Arc<Notify>,
    state: Arc<LinkState>,
) {
    let mut running: Option<AbortOnDrop> = None;
    loop {
        let current = links.borrow_and_update().clone();
        drop(running.take());
        state.telegram.store(false, Ordering::Relaxed);
        state.feishu.store(false, Ordering::Relaxed);
        if let Some(links) = current {
            let mut tasks = Vec::new();
            if let Some(telegram) = &links.telegram {
                tasks.push(tokio::spawn(receive(
                    Arc::clone(telegram),
                    Arc::clone(&store),
                    Arc::clone(&inbox_filled),
                    Arc::clone(&state),
                    |state| &state.telegram,
                )));
            }
            // Its own task: one channel's failure never holds up the other.
            if let Some(feishu) = &links.feishu {
                tasks.push(tokio::spawn(receive(
                    Arc::clone(feishu),
                    Arc::clone(&store),
                    Arc::clone(&inbox_filled),
                    Arc::clone(&state),
                    |state| &state.feishu,
                )));
            }
            running = Some(AbortOnDrop(tasks));
        }
        if links.changed().await.is_err() {
            return;
        }
    }
}

async fn receive<C: Channel>(
    channel: Arc<C>,
    store: Arc<Store>,
    inbox_filled: Arc<Notify>,
    state: Arc<LinkState>,
    flag: fn(&LinkState) -> &AtomicBool,
) {
    let menu = tokio::spawn(set_menu(Arc::clone(&channel)));
    let _menu = AbortOnDrop(vec![menu]);
    run_receiver(
        channel.as_ref(),
        |batch| {
            let stored = store
                .store_incoming(&batch, now())
                .map_err(|e| e.to_string());
            if stored.is_ok() {
                inbox_filled.notify_one();
            }
            std::future::ready(stored.map(|_| ()))
        },
        flag(&state),
    )
    .await
}

/// Sets the command menu once the channel can be reached (at boot, DNS and the lease may
/// come a few seconds after agentd); a refusal is reported once and not retried.
async fn set_menu<C: Channel>(channel: Arc<C>) {
    let menu: Vec<(String, String)> = MENU
        .iter()
        .map(|(name, what)| (name.to_string(), what.to_string()))
        .collect();
    let mut wait = OUTBOX_RETRY_FIRST;
    loop {
        match channel.set_commands(&menu).await {
            Ok(()) => return,
            Err(error) if !error.is_transient() => {
                eprintln!(
                    "{}: the command menu was refused: {error}",
                    channel.kind().name()
                );
                return;
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(OUTBOX_RETRY_MAX);
            }
        }
    }
}

/// Sends stored replies in order, each until the IM server has it; a reply the server refuses
/// for good (an unknown chat) is dropped with a console line.
pub(super) async fn send_outbox(
    links: watch::Receiver<Option<Arc<Links>>>,
    store: Arc<Store>,
    filled: Arc<Notify>,
) {
    let mut wait = OUTBOX_RETRY_FIRST;
    loop {
        let next = store.next_outgoing();
        let current = links.borrow().clone();
        match (next, current) {
            (Ok(Some((seq, Err(error)))), _) => {
                eprintln!("agent: reply {seq} dropped: {error}");
                let _ = store.sent(seq);
            }
            (Ok(Some((seq, Ok(entry)))), Some(links)) => {
                match links.send(entry.channel, &entry.chat, &entry.message).await {
                    Ok(()) => {
                        wait = OUTBOX_RETRY_FIRST;
                        if let Err(error) = store.sent(seq) {
                            eprintln!("agent: outbox: {error}");
                            tokio::time::sleep(wait).await;
                        }
                    }
                    Err(error) if !error.is_transient() => {
                        eprintln!("agent: reply {seq} dropped: {error}");
                        let _ = store.sent(seq);
                    }
                    Err(error) => {
                        let pause = match &error {
                            carapace_im::Error::RateLimited { retry_after, .. } => *retry_after,
                            _ => wait,
                        };
                        eprintln!(
                            "agent: reply {seq} not sent yet ({error}); retrying in {} s",
                            pause.as_secs()
                        );
                        tokio::time::sleep(pause).await;
                        wait = (wait * 2).min(OUTBOX_RETRY_MAX);
                    }
                }
            }
            (Err(error), _) => {
                eprintln!("agent: outbox: {error}");
                tokio::time::sleep(OUTBOX_RETRY_MAX).await;
            }
            _ => {
                let _ = tokio::time::timeout(IDLE_WAKE, filled.notified()).await;
            }
        }
    }
}
