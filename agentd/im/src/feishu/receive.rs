//! Batches for the core, and the acknowledgements that keep the delivery contract: the events
//! of a batch are acknowledged to the server only by the next `next_batch` call, which the
//! core makes once it stored the batch. An event the server gets no acknowledgement for is
//! sent again (after a reconnect at the latest); the core drops a second copy by its id.
//!
//! A press on a card's button (a callback) keeps the same contract. The platform wants its
//! answer within about 3 seconds, or the owner's client shows an error on the card; the
//! core's next call comes as soon as the batch is stored, well inside that.
//!
//! A connection that ends is not re-opened inside `next_batch`: the call returns Unreachable
//! (after handing over any events that came before the end), so the receiver's backoff paces
//! reconnects and the console says the link went down. The next call connects anew; a batch
//! returned from a connection that is gone is never acknowledged, so the server sends it again.

use std::time::Instant;

use super::connection::{Connection, Delivery};
use super::frame::{Answer, Frame};
use super::{CHANNEL, Feishu, incoming};
use crate::{Error, Incoming};

/// The most events one batch holds.
const MAX_BATCH: usize = 100;

#[derive(Default)]
pub(super) struct Link {
    connection: Option<Connection>,
    /// The frames of the last batch, with when each arrived and what its acknowledgement
    /// answers: acknowledged by the next call.
    unacked: Vec<(Frame, Instant, Answer)>,
}

impl Feishu {
    pub(super) async fn receive(&self) -> Result<Vec<Incoming>, Error> {
        let mut guard = self.link.lock().await;
        let Link {
            connection,
            unacked,
        } = &mut *guard;
        let stored = std::mem::take(unacked);
        if let Some(connection) = connection.as_ref() {
            for (frame, received, answer) in stored {
                connection.acknowledge(frame, received, answer);
            }
        }
        let live = match connection.take() {
            Some(live) => live,
            None => self.connect().await?,
        };
        let live = connection.insert(live);
        let Ok(first) = tokio::time::timeout(self.batch_wait, live.next()).await else {
            return Ok(Vec::new());
        };
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut ended = None;
        match first {
            Ok(delivery) => deliveries.push(delivery),
            Err(reason) => ended = Some(reason),
        }
        while ended.is_none() && deliveries.len() < MAX_BATCH {
            match live.try_next() {
                Some(Ok(delivery)) => deliveries.push(delivery),
                Some(Err(reason)) => ended = Some(reason),
                None => break,
            }
        }
        let mut batch = Vec::new();
        for delivery in deliveries {
            let read = incoming::read(&delivery.payload);
            match read.message {
                Some(message) => {
                    batch.push(message);
                    unacked.push((delivery.frame, delivery.received, read.answer));
                }
                // Nothing for the core to store: acknowledged at once.
                None => live.acknowledge(delivery.frame, delivery.received, read.answer),
            }
        }
        if let Some(reason) = ended {
            *connection = None;
            unacked.clear();
            if batch.is_empty() {
                return Err(Error::Unreachable {
                    channel: CHANNEL,
                    detail: reason,
                });
            }
        }
        Ok(batch)
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let endpoint = self.endpoint().await?;
        Connection::open(endpoint, self.tls.clone()).await
    }
}
