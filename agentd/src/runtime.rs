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
use carapace_im::receiver::run_receiver;
use carapace_im::{Channel, ChannelKind, Outgoing};
use carapace_owner::OwnerSettings;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::agent::{Agent, Effect};
use crate::commands::MENU;
use crate::links::{Links, LlmBrain};
use crate::netd_control::NetdControl;
use crate::notify::Notifier;
use crate::store::{OutboxEntry, Store};
use board_support::notify::Message;

/// New settings must reach the model and the IM link within this long to be kept.
pub const SETTINGS_TRIAL: Duration = Duration::from_secs(30);
/// netd reverts a Wi-Fi trial by itself this long after the check's deadline, should agentd
/// not say commit or revert by then (it died in between): time for the check's last
/// exchange and the commit itself.
pub const WIFI_REVERT_MARGIN: Duration = Duration::from_secs(30);
/// Between two checks of links on new Wi-Fi networks, which take a few seconds to come up.
const WIFI_CHECK_PAUSE: Duration = Duration::from_secs(2);
/// The longest either loop sleeps without being woken: a safety net, since every change that
/// matters wakes them (a stored message, a queued reply, the next reminder's time).
const IDLE_WAKE: Duration = Duration::from_secs(60);
/// Tries at answering one message before it is dropped (with a console line).
const ATTEMPTS_PER_MESSAGE: u32 = 3;
/// The outbox's waits after a failed send: doubling from the first to the last.
const OUTBOX_RETRY_FIRST: Duration = Duration::from_secs(1);
const OUTBOX_RETRY_MAX: Duration = Duration::from_secs(60);

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
        ));
        let outbox = tokio::spawn(send_outbox(
            self.links.subscribe(),
            Arc::clone(&self.agent.store),
            Arc::clone(&self.outbox_filled),
        ));
        let _tasks = AbortOnDrop(vec![receivers, outbox]);
        loop {
            self.answer_pending().await;
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
            let handled = match self.agent.handle(&brain, &message, now()).await {
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
                Effect::None => {}
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

    /// Tries `candidate`: kept (and made the last good settings) only if the new links reach
    /// the model and the IM link within [`SETTINGS_TRIAL`]; otherwise the running links stay.
    /// New Wi-Fi networks are put on trial in netd first, committed with the settings or
    /// reverted (and netd reverts by itself should agentd die in between).
    /// The owner hears the outcome either way; the audit log gets it too.
    pub async fn try_settings(
        &mut self,
        candidate: OwnerSettings,
        changed: &str,
        channel: ChannelKind,
        chat: &str,
    ) {
        let now = now();
        let toml = candidate.to_toml();
        if let Err(error) = self.agent.store.put_setting("trial", Some(&toml)) {
            eprintln!("agent: recording the settings trial: {error}");
        }
        let wifi = candidate.wifi != self.agent.settings.wifi;
        // What became of the Wi-Fi networks when the change is not kept.
        let mut wifi_note = "";
        let outcome = match Links::build(&candidate, &self.http) {
            Ok(links) if wifi => {
                self.check_on_new_wifi(&candidate, links)
                    .await
                    .map_err(|(reason, note)| {
                        wifi_note = note;
                        reason
                    })
            }
            Ok(links) => match tokio::time::timeout(SETTINGS_TRIAL, links.check()).await {
                Ok(Ok(())) => Ok(links),
                Ok(Err(failure)) => Err(failure.reason),
                Err(_) => Err(format!("no answer within {} s", SETTINGS_TRIAL.as_secs())),
            },
            Err(error) => Err(error),
        };
        let text = match outcome {
            Ok(links) => match self.agent.store.set_settings(&toml, Some(&toml)) {
                Ok(()) => {
                    self.agent.settings = candidate;
                    self.links.send_replace(Some(Arc::new(links)));
                    self.agent.record(
                        "settings",
                        &format!("{changed} changed; the new settings work"),
                        now,
                    );
                    format!("Done: {changed} changed, and I still reach the model and this chat.")
                }
                Err(error) if wifi => format!(
                    "The new Wi-Fi networks are in force, but storing the settings failed: \
                     {error}. /settings shows the old ones until that works."
                ),
                Err(error) => format!("Not changed: storing the settings failed: {error}"),
            },
            Err(reason) => {
                self.agent.record(
                    "settings",
                    &format!("{changed} not changed; kept the last good settings: {reason}"),
                    now,
                );
                format!(
                    "I kept the previous settings: with the new {changed}, {reason}. Nothing else \
                     changed.{wifi_note}"
                )
            }
        };
        if let Err(error) = self.agent.store.put_setting("trial", None) {
            eprintln!("agent: clearing the settings trial: {error}");
        }
        self.queue(channel, chat, text);
    }

    /// netd puts the candidate's networks on trial; the links are checked until they work or
    /// [`SETTINGS_TRIAL`] ends (a network takes a few seconds to join and lease), and netd is
    /// told to commit or to go back. A failure comes with what the owner should know of the
    /// Wi-Fi networks (nothing when netd never took the new ones).
    async fn check_on_new_wifi(
        &self,
        candidate: &OwnerSettings,
        links: Links,
    ) -> Result<Links, (String, &'static str)> {
        let revert_after = SETTINGS_TRIAL + WIFI_REVERT_MARGIN;
        self.netd
            .wifi_trial(&candidate.wifi, revert_after)
            .await
            .map_err(|error| (format!("netd did not take the Wi-Fi networks: {error}"), ""))?;
        let deadline = tokio::time::Instant::now() + SETTINGS_TRIAL;
        let checked = loop {
            let failure = match tokio::time::timeout_at(deadline, links.check()).await {
                Ok(Ok(())) => break Ok(()),
                Ok(Err(failure)) => failure,
                Err(_) => break Err(format!("no answer within {} s", SETTINGS_TRIAL.as_secs())),
            };
            if !failure.transient || tokio::time::Instant::now() + WIFI_CHECK_PAUSE >= deadline {
                break Err(failure.reason);
            }
            tokio::time::sleep(WIFI_CHECK_PAUSE).await;
        };
        let checked = match checked {
            // A commit netd refuses: its own deadline passed, or it restarted; either way it
            // went back.
            Ok(()) => self
                .netd
                .commit()
                .await
                .map_err(|error| format!("netd did not keep the Wi-Fi networks: {error}")),
            Err(reason) => Err(reason),
        };
        let Err(reason) = checked else {
            return Ok(links);
        };
        match self.netd.revert().await {
            Ok(()) => Err((reason, " The box is back on its previous Wi-Fi networks.")),
            Err(error) => {
                eprintln!(
                    "settings: asking netd to go back to the previous Wi-Fi networks: {error}; \
                     it goes back by itself within {} s",
                    revert_after.as_secs()
                );
                Err((
                    reason,
                    " netd goes back to the previous Wi-Fi networks by itself within a minute.",
                ))
            }
        }
    }

    /// A trial that a crash or power cut interrupted: the running settings were never
    /// replaced, so nothing is undone; the owner is told the change did not happen.
    /// netd is told to go back too, in case the trial changed the Wi-Fi networks (it would
    /// by itself, a little later).
    pub fn finish_interrupted_trial(&mut self) {
        let Ok(Some(trial)) = self.agent.store.settings("trial") else {
            return;
        };
        let _ = self.agent.store.put_setting("trial", None);
        let wifi_changed = OwnerSettings::parse(&trial)
            .map_or(true, |trial| trial.wifi != self.agent.settings.wifi);
        if wifi_changed {
            let netd = self.netd.clone();
            tokio::spawn(async move {
                match netd.revert().await {
                    Ok(()) => println!("settings: netd went back to the last good Wi-Fi networks"),
                    // Nothing pending: netd went back by itself already, or never began.
                    Err(error) => println!("settings: no Wi-Fi trial to undo in netd ({error})"),
                }
            });
        }
        self.agent.record(
            "settings",
            "a settings trial was interrupted by a restart; the last good settings are in use",
            now(),
        );
        let owners: Vec<_> = self
            .agent
            .store
            .users()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.role == crate::store::Role::Owner)
            .collect();
        for owner in owners {
            self.queue(
                owner.channel,
                &owner.id,
                "A settings change was interrupted by a restart; I kept the last good settings."
                    .into(),
            );
        }
    }

    fn queue(&self, channel: ChannelKind, chat: &str, text: String) {
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

/// One receiver task per channel of the current links, replaced when the links change.
async fn supervise_receivers(
    mut links: watch::Receiver<Option<Arc<Links>>>,
    store: Arc<Store>,
    inbox_filled: Arc<Notify>,
) {
    let mut running: Option<AbortOnDrop> = None;
    loop {
        let current = links.borrow_and_update().clone();
        drop(running.take());
        if let Some(links) = current {
            let mut tasks = Vec::new();
            if let Some(telegram) = &links.telegram {
                tasks.push(tokio::spawn(receive(
                    Arc::clone(telegram),
                    Arc::clone(&store),
                    Arc::clone(&inbox_filled),
                )));
            }
            // Its own task: one channel's failure never holds up the other.
            if let Some(feishu) = &links.feishu {
                tasks.push(tokio::spawn(receive(
                    Arc::clone(feishu),
                    Arc::clone(&store),
                    Arc::clone(&inbox_filled),
                )));
            }
            running = Some(AbortOnDrop(tasks));
        }
        if links.changed().await.is_err() {
            return;
        }
    }
}

async fn receive<C: Channel>(channel: Arc<C>, store: Arc<Store>, inbox_filled: Arc<Notify>) {
    let menu = tokio::spawn(set_menu(Arc::clone(&channel)));
    let _menu = AbortOnDrop(vec![menu]);
    run_receiver(channel.as_ref(), |batch| {
        let stored = store
            .store_incoming(&batch, now())
            .map_err(|e| e.to_string());
        if stored.is_ok() {
            inbox_filled.notify_one();
        }
        std::future::ready(stored.map(|_| ()))
    })
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
async fn send_outbox(
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

/// Tasks that end when this is dropped.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
