//! The running agent: the receivers that fill the inbox, the loop that answers stored messages
//! one at a time (and delivers due reminders), the outbox that retries each reply until the IM
//! server has it, and settings transactions (a change of the Wi-Fi networks is one too, with
//! netd keeping the revert point: netd_control.rs).
//!
//! ```text
//! IM server ─getUpdates─▶ receiver ─store─▶ pending ─agent─▶ outbox ─send─▶ IM server
//!                         (acknowledged by the next call, after the store committed)
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carapace_http::Client;
use carapace_im::{ChannelKind, Outgoing};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::agent::{Agent, Effect};
use crate::links::{Links, LlmBrain};
use crate::netd_control::NetdControl;
use crate::notify::Notifier;
use crate::store::OutboxEntry;
use board_support::notify::Message;

mod channels;
mod model_adds;
mod settings_trial;

pub use channels::LinkState;
use channels::{send_outbox, supervise_receivers};
pub use settings_trial::{SETTINGS_TRIAL, WIFI_REVERT_MARGIN};

/// The longest either loop sleeps without being woken: a safety net, since every change that
/// matters wakes them (a stored message, a queued reply, the next reminder's time).
pub(crate) const IDLE_WAKE: Duration = Duration::from_secs(60);
/// Tries at answering one message before it is dropped (with a console line).
const ATTEMPTS_PER_MESSAGE: u32 = 3;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub struct Runtime {
    pub agent: Agent,
    pub http: Client,
    netd: NetdControl,
    notifier: Arc<Notifier>,
    links: watch::Sender<Option<Arc<Links>>>,
    inbox_filled: Arc<Notify>,
    outbox_filled: Arc<Notify>,
    /// Whether the IM links reach their servers (the update service's health check).
    pub link_state: Arc<LinkState>,
    /// The update service's control socket.
    pub updates: crate::updates::UpdateControl,
    /// What agentd's self-test at start said ("passed", or what failed).
    pub self_test: String,
    /// `/add_model` downloads that ended (runtime/model_adds.rs).
    finished_adds: model_adds::FinishedAdds,
    /// Failed attempts per pending message, this run.
    failures: std::collections::HashMap<u64, u32>,
}

impl Runtime {
    pub fn new(agent: Agent, http: Client, netd: NetdControl, notifier: Arc<Notifier>) -> Runtime {
        Runtime {
            agent,
            http,
            netd,
            notifier,
            links: watch::channel(None).0,
            inbox_filled: Arc::new(Notify::new()),
            outbox_filled: Arc::new(Notify::new()),
            link_state: Arc::default(),
            updates: crate::updates::UpdateControl::default(),
            self_test: String::from("not run"),
            finished_adds: Default::default(),
            failures: Default::default(),
        }
    }

    /// Builds the links from the current settings; a box without settings runs without them
    /// (paired later, once the owner's file arrives) and says so.
    pub fn start_links(&mut self) {
        let links = Links::build(&self.agent.settings, &self.http);
        match links {
            Ok(links) => {
                self.links.send_replace(Some(Arc::new(links)));
            }
            Err(error) => eprintln!(
                "agent: not connecting: {error}; fix the settings from the owner's chat or with a new owner-settings file"
            ),
        }
    }

    /// Runs until the process is stopped.
    pub async fn run(mut self) -> std::convert::Infallible {
        let receivers = tokio::spawn(supervise_receivers(
            self.links.subscribe(),
            Arc::clone(&self.agent.store),
            Arc::clone(&self.inbox_filled),
            Arc::clone(&self.link_state),
        ));
        let outbox = tokio::spawn(send_outbox(
            self.links.subscribe(),
            Arc::clone(&self.agent.store),
            Arc::clone(&self.outbox_filled),
        ));
        let updates = tokio::spawn(crate::updates::report(
            self.updates.clone(),
            Arc::clone(&self.agent.store),
            Arc::clone(&self.outbox_filled),
            Arc::clone(&self.link_state),
            self.self_test.clone(),
        ));
        let _tasks = AbortOnDrop(vec![receivers, outbox, updates]);
        loop {
            self.answer_pending().await;
            self.finish_model_adds().await;
            let sleep = self.deliver_due_reminders();
            let _ = tokio::time::timeout(sleep, self.inbox_filled.notified()).await;
        }
    }

    async fn answer_pending(&mut self) {
        loop {
            let next = match self.agent.store.next_pending() {
                Ok(next) => next,
                Err(error) => {
                    eprintln!("agent: reading the inbox: {error}");
                    return;
                }
            };
            let Some((seq, message)) = next else {
                return;
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    self.drop_pending(seq, &error.to_string());
                    continue;
                }
            };
            let Some(links) = self.links.borrow().clone() else {
                return;
            };
            let brain = LlmBrain(Arc::clone(&links.llm));
            let handled = match self.agent.handle(&brain, &*links, &message, now()).await {
                Ok(handled) => handled,
                Err(error) => {
                    // Tried again on the next wake-up (a full disk may clear); a message that
                    // keeps failing is dropped rather than holding up every later one.
                    let failures = self.failures.entry(seq).or_insert(0);
                    *failures += 1;
                    eprintln!("agent: answering message {seq} (attempt {failures}): {error}");
                    if *failures >= ATTEMPTS_PER_MESSAGE {
                        self.drop_pending(seq, &error.to_string());
                        continue;
                    }
                    return;
                }
            };
            self.failures.remove(&seq);
            if let Err(error) = self.agent.store.finish(seq, handled.answer) {
                eprintln!("agent: storing the answer to message {seq}: {error}");
                return;
            }
            self.outbox_filled.notify_one();
            match handled.effect {
                // agent.rs turned a deletion into a reply already.
                Effect::None | Effect::DeleteCommandMessage => {}
                Effect::Reboot => {
                    // After the reply is stored; the outbox may send it before PID 1 stops us.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Err(error) = self.notifier.notify(Message::Reboot) {
                        eprintln!("agent: asking PID 1 to reboot: {error}");
                    }
                }
                Effect::TrySettings { settings, changed } => {
                    self.try_settings(*settings, &changed, message.channel, &message.chat)
                        .await
                }
                Effect::AddModel { url } => self.start_model_add(
                    url,
                    message.channel,
                    message.chat.clone(),
                    crate::store::user_key(message.channel, &message.sender),
                ),
            }
        }
    }

    fn drop_pending(&mut self, seq: u64, why: &str) {
        eprintln!("agent: message {seq} dropped unanswered: {why}");
        self.failures.remove(&seq);
        if let Err(error) = self.agent.store.finish(seq, Default::default()) {
            eprintln!("agent: dropping message {seq}: {error}");
        }
    }

    pub(crate) fn queue(&self, channel: ChannelKind, chat: &str, text: String) {
        let entry = OutboxEntry {
            channel,
            chat: chat.into(),
            message: Outgoing::Text(text),
        };
        match self.agent.store.queue(&entry) {
            Ok(()) => self.outbox_filled.notify_one(),
            Err(error) => eprintln!("agent: queueing a message: {error}"),
        }
    }

    /// Queues the reminders that are due; returns how long until the next one (at most
    /// [`IDLE_WAKE`]).
    fn deliver_due_reminders(&self) -> Duration {
        let now = now();
        let Ok(reminders) = self.agent.store.reminders() else {
            return IDLE_WAKE;
        };
        let next = reminders
            .iter()
            .filter(|(_, r)| r.due > now)
            .map(|(_, r)| Duration::from_secs(r.due - now))
            .min()
            .unwrap_or(IDLE_WAKE)
            .min(IDLE_WAKE);
        for (id, reminder) in reminders.into_iter().filter(|(_, r)| r.due <= now) {
            let entry = OutboxEntry {
                channel: reminder.channel,
                chat: reminder.chat.clone(),
                message: Outgoing::Text(format!("Reminder: {}", reminder.text)),
            };
            match self.agent.store.deliver_reminder(id, &entry) {
                Ok(()) => self.outbox_filled.notify_one(),
                Err(error) => eprintln!("agent: delivering reminder {id}: {error}"),
            }
        }
        next
    }
}

/// Tasks that end when this is dropped.
pub(crate) struct AbortOnDrop(pub(crate) Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
