//! agentd's side of the update service (updated, board_support::update_control has the
//! protocol). agentd cannot write a slot; it passes the owner's /update commands on, reports
//! its own health (self-test, IM link) every few seconds, which is what commits a trial boot,
//! tells the owners what updated has to say (progress, committed, rolled back) once each, and
//! runs the store's migrations that wait for a committed slot once updated says it is.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use board_support::update_control::{Event, Reply, Request};
use carapace_im::Outgoing;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Notify;

use crate::runtime::LinkState;
use crate::store::{OutboxEntry, Role, Store};

/// The store counter with the last event the owners were told.
pub const EVENTS_TOLD: &str = "update_events_told";
/// Reports come often in the first minutes after a start (a trial boot waits on them), then
/// calmly.
const REPORT_EARLY: Duration = Duration::from_secs(3);
const EARLY_FOR: Duration = Duration::from_secs(10 * 60);
const REPORT_LATER: Duration = Duration::from_secs(30);
/// A check talks to the repository (updated allows it a minute).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(75);

#[derive(Clone, Debug)]
pub struct UpdateControl {
    pub path: PathBuf,
}

impl Default for UpdateControl {
    fn default() -> UpdateControl {
        UpdateControl {
            path: PathBuf::from(board_support::update_control::SOCKET_PATH),
        }
    }
}

impl UpdateControl {
    /// One exchange: the reply, or why there was none.
    pub async fn ask(&self, request: &Request) -> Result<Reply, String> {
        let exchange = async {
            let mut stream = UnixStream::connect(&self.path)
                .await
                .map_err(|err| format!("the update service is not reachable ({err})"))?;
            stream
                .write_all(request.to_line().as_bytes())
                .await
                .map_err(|err| format!("sending to the update service: {err}"))?;
            let mut line = String::new();
            BufReader::new(stream)
                .read_line(&mut line)
                .await
                .map_err(|err| format!("reading the update service's answer: {err}"))?;
            Reply::parse(&line)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err("the update service did not answer in time".into()))
    }
}

/// Serialises taking events, so the report loop and a command never tell one twice.
static TELLING: Mutex<()> = Mutex::new(());

/// The events the owners have not been told yet, marked told.
pub fn take_new_events(store: &Store, events: &[Event]) -> Vec<String> {
    let _telling = TELLING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Ok(mut told) = store.count(EVENTS_TOLD) else {
        return Vec::new();
    };
    // updated started its numbering over (its state was lost): everything it has is new.
    if events.last().is_some_and(|last| last.seq < told) {
        told = 0;
    }
    let new: Vec<&Event> = events.iter().filter(|event| event.seq > told).collect();
    let Some(last) = new.last() else {
        return Vec::new();
    };
    if let Err(error) = store.put_count(EVENTS_TOLD, last.seq) {
        eprintln!("agent: recording the update events told: {error}");
        return Vec::new();
    }
    new.iter().map(|event| event.text.clone()).collect()
}

/// Reports agentd's health to updated for as long as agentd runs, and queues what updated has
/// to say for every owner.
pub async fn report(
    control: UpdateControl,
    store: Arc<Store>,
    outbox_filled: Arc<Notify>,
    links: Arc<LinkState>,
    self_test: String,
) {
    let started = tokio::time::Instant::now();
    let mut unreachable_said = false;
    // Without an update service there are no trial boots: the running slot is the box's.
    let mut migrated = !std::path::Path::new(board_support::update_config::UPDATE_CONFIG_PATH)
        .exists()
        && migrate_committed(&store);
    loop {
        let request = Request::Health {
            self_test: self_test.clone(),
            im_connected: links.any_connected(),
            uptime_s: started.elapsed().as_secs(),
        };
        match control.ask(&request).await {
            Ok(reply) => {
                unreachable_said = false;
                if !reply.status.on_trial && !migrated {
                    migrated = migrate_committed(&store);
                }
                let texts = take_new_events(&store, &reply.status.events);
                if !texts.is_empty() {
                    tell_owners(&store, &texts.join("\n"));
                    outbox_filled.notify_one();
                }
            }
            Err(error) if !unreachable_said => {
                eprintln!("agent: {error}");
                unreachable_said = true;
            }
            Err(_) => {}
        }
        let wait = match started.elapsed() < EARLY_FOR {
            true => REPORT_EARLY,
            false => REPORT_LATER,
        };
        tokio::time::sleep(wait).await;
    }
}

/// The store's migrations that wait for a committed slot (store_schema); whether they are
/// done.
fn migrate_committed(store: &Store) -> bool {
    match store.migrate_committed() {
        Ok(_) => true,
        Err(error) => {
            eprintln!("agent: migrating the store now that this slot is committed: {error}");
            false
        }
    }
}

fn tell_owners(store: &Store, text: &str) {
    let Ok(users) = store.users() else {
        return;
    };
    for owner in users.iter().filter(|user| user.role == Role::Owner) {
        let entry = OutboxEntry {
            channel: owner.channel,
            chat: owner.id.clone(),
            message: Outgoing::Text(format!("Update: {text}")),
        };
        if let Err(error) = store.queue(&entry) {
            eprintln!("agent: queueing an update message: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(seqs: &[u64]) -> Vec<Event> {
        seqs.iter()
            .map(|&seq| Event {
                seq,
                text: format!("event {seq}"),
            })
            .collect()
    }

    #[test]
    fn each_event_is_told_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            take_new_events(&store, &events(&[1, 2])),
            ["event 1", "event 2"]
        );
        assert!(take_new_events(&store, &events(&[1, 2])).is_empty());
        assert_eq!(take_new_events(&store, &events(&[2, 3])), ["event 3"]);
    }

    #[test]
    fn a_restarted_numbering_is_told_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        take_new_events(&store, &events(&[7, 8]));
        assert_eq!(take_new_events(&store, &events(&[1])), ["event 1"]);
    }
}
