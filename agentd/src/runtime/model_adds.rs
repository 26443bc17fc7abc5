//! `/add_model` in the background: the download runs beside the loop that answers messages
//! (a pack can take many minutes), and its end comes back to that loop, which tells the owner,
//! audits it, and takes the download's hosts out of netd's allowlist again.

use std::sync::{Arc, Mutex};

use carapace_http::Url;
use carapace_im::ChannelKind;

use super::{Runtime, now};
use crate::model_packs::{self, Outcome};

/// The adds that ended and wait for the loop.
#[derive(Default, Clone)]
pub(crate) struct FinishedAdds(Arc<Mutex<Vec<FinishedAdd>>>);

pub(crate) struct FinishedAdd {
    channel: ChannelKind,
    chat: String,
    /// Who asked (a user key).
    by: String,
    host: String,
    outcome: Outcome,
}

impl Runtime {
    /// Starts fetching the pack at `url` for `by` in `chat`.
    pub(super) fn start_model_add(&self, url: Url, channel: ChannelKind, chat: String, by: String) {
        let http = self.http.clone();
        let netd = self.netd.clone();
        let inference = self.agent.inference.clone();
        let finished = self.finished_adds.clone();
        let wake = Arc::clone(&self.inbox_filled);
        tokio::spawn(async move {
            let host = url.host_str().unwrap_or_default().to_string();
            let outcome = model_packs::add_from_link(url, &http, &netd, &inference).await;
            lock(&finished.0).push(FinishedAdd {
                channel,
                chat,
                by,
                host,
                outcome,
            });
            wake.notify_one();
        });
    }

    /// Tells and records each add that ended, and releases its hosts.
    pub(super) async fn finish_model_adds(&mut self) {
        let finished: Vec<FinishedAdd> = std::mem::take(&mut *lock(&self.finished_adds.0));
        for add in finished {
            let (text, detail) = match &add.outcome.result {
                Ok(added) => (
                    model_packs::added_text(added),
                    format!(
                        "model pack {} {} ({}, signed by key {}) added from {} for {}",
                        added.id,
                        added.version,
                        added.capability,
                        added.signed_by,
                        add.host,
                        add.by
                    ),
                ),
                Err(why) => (
                    format!("I could not add the model pack: {why}"),
                    format!(
                        "the model pack from {} for {} was not added: {why}",
                        add.host, add.by
                    ),
                ),
            };
            self.agent.record("model", &detail, now());
            self.queue(add.channel, &add.chat, text);
            if let Err(error) = crate::reach::release(&self.agent, add.outcome.reached).await {
                eprintln!("agent: releasing a model pack's hosts: {error}");
            }
        }
    }
}

fn lock(adds: &Mutex<Vec<FinishedAdd>>) -> std::sync::MutexGuard<'_, Vec<FinishedAdd>> {
    adds.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
