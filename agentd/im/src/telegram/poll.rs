//! Long polling with getUpdates. The offset lives here: after a batch it is the last
//! update_id + 1, and passing it on the next call is what confirms the batch to Telegram. So
//! a batch is acknowledged only when the core asks for the next one, after storing it. The
//! first poll, and the first after a failure, is short, so the link is known to be up at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::api::Update;
use super::call::{ApiFailure, Payload};
use super::{CALL_TIMEOUT, POLL_MARGIN, Telegram, incoming};
use crate::{Error, Incoming};

impl Telegram {
    pub(super) async fn poll(&self) -> Result<Vec<Incoming>, Error> {
        let polled = self.poll_once().await;
        self.answered.store(polled.is_ok(), Ordering::SeqCst);
        polled
    }

    async fn poll_once(&self) -> Result<Vec<Incoming>, Error> {
        let offset = self.offset.load(Ordering::SeqCst);
        let updates = match self.get_updates(offset).await? {
            Ok(updates) => updates,
            // 409: a webhook is set, and Telegram serves either a webhook or getUpdates. This
            // box only polls, so it removes the webhook (keeping the pending updates) and
            // tries once more. Another poller with the same token also gives 409; that one
            // the retry cannot fix, and it comes back as Rejected.
            Err(failure) if failure.code == 409 => {
                let body = json!({"drop_pending_updates": false});
                self.call::<bool>("deleteWebhook", Payload::Json(body), CALL_TIMEOUT)
                    .await?;
                self.get_updates(offset)
                    .await?
                    .map_err(|failure| self.failure("getUpdates", failure))?
            }
            Err(failure) => return Err(self.failure("getUpdates", failure)),
        };
        if let Some(last) = updates.iter().map(|update| update.update_id).max() {
            self.offset.fetch_max(last + 1, Ordering::SeqCst);
        }
        let mut batch = Vec::new();
        for update in updates {
            if let Some(query) = update.callback_query {
                if let Some((query_id, press)) = incoming::read_button(update.update_id, query) {
                    // Until answered, the owner's app shows the button busy. The answer only
                    // stops that: a failure costs nothing but the spinner, so it is ignored.
                    let body = json!({"callback_query_id": query_id});
                    let _ = self
                        .call::<bool>("answerCallbackQuery", Payload::Json(body), CALL_TIMEOUT)
                        .await;
                    batch.push(press);
                }
            } else if let Some(message) = incoming::read(update.update_id, update.message) {
                batch.push(message);
            }
        }
        Ok(batch)
    }

    async fn get_updates(&self, offset: i64) -> Result<Result<Vec<Update>, ApiFailure>, Error> {
        // Short until Telegram answered once (at start, after a failure): see `answered`.
        let poll_timeout = match self.answered.load(Ordering::SeqCst) {
            true => self.poll_timeout,
            false => Duration::ZERO,
        };
        let mut body = json!({
            "timeout": poll_timeout.as_secs(),
            "allowed_updates": ["message", "callback_query"],
        });
        // Update ids are positive; 0 means no batch yet (the server starts at the oldest
        // unconfirmed update).
        if offset > 0 {
            body["offset"] = json!(offset);
        }
        let timeout = poll_timeout + POLL_MARGIN;
        self.try_call("getUpdates", Payload::Json(body), timeout)
            .await
    }
}
