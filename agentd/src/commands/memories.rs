//! `/remember`, `/recall` and `/forget_memory`: the box's memories (memory.rs) without the
//! model. Any paired user may use them: the memories are the box's, not one person's.

use super::Command;
use crate::agent::Agent;
use crate::error::Error;
use crate::memory::{self, Recalled};
use crate::store::Memory;

/// What `/recall` alone lists.
const LATEST_SHOWN: usize = 10;

/// `/remember <text>`: kept even while the engine is down, and said so.
pub(super) async fn remember(agent: &Agent, command: &Command, now: u64) -> Result<String, Error> {
    let text = command.rest.trim();
    if text.is_empty() {
        return Ok("Say what to keep: /remember the spare key is under the blue flowerpot".into());
    }
    match memory::keep(&agent.store, &agent.inference, text, now).await {
        Ok(kept) => Ok(match kept.not_embedded {
            None => format!("Remembered (memory {}).", kept.id),
            Some(error) => format!(
                "Remembered (memory {}). It will be searchable once the local inference engine \
                 answers; just now {error}.",
                kept.id
            ),
        }),
        Err(error) => answered(error, "Not kept"),
    }
}

/// `/recall <query>`: the closest memories by meaning; `/recall` alone: the latest.
pub(super) async fn recall(agent: &Agent, command: &Command) -> Result<String, Error> {
    let query = command.rest.trim();
    if query.is_empty() {
        let latest = memory::latest(&agent.store, LATEST_SHOWN)?;
        if latest.is_empty() {
            return Ok("Nothing in memory yet; /remember <text> keeps something.".into());
        }
        return Ok(listed("Latest memories:", &latest));
    }
    match memory::recall(&agent.store, &agent.inference, query).await {
        Ok(found) if found.is_empty() => Ok("Nothing in memory matches that.".into()),
        Ok(found) => {
            let found: Vec<(u64, Memory)> = found
                .into_iter()
                .map(|Recalled { id, memory, .. }| (id, memory))
                .collect();
            Ok(listed("From memory:", &found))
        }
        Err(error) => answered(error, "Cannot search memory now"),
    }
}

/// `/forget_memory <number>`.
pub(super) fn forget(agent: &Agent, command: &Command) -> Result<String, Error> {
    let Some(id) = command.args.first().and_then(|arg| arg.parse::<u64>().ok()) else {
        return Ok("Say which: /forget_memory 7 (the number /recall shows).".into());
    };
    Ok(match agent.store.remove_memory(id)? {
        true => format!("Memory {id} forgotten."),
        false => format!("There is no memory {id}; /recall lists the latest."),
    })
}

fn listed(heading: &str, memories: &[(u64, Memory)]) -> String {
    let mut text = heading.to_string();
    for (id, memory) in memories {
        text.push_str(&format!("\n{id}. {}", memory.text));
    }
    text
}

/// The error as the answer (`<what>: <error>.`), except the store's own failures, which the
/// runtime retries (a full disk may clear).
fn answered(error: Error, what: &str) -> Result<String, Error> {
    match error {
        Error::Store(_) => Err(error),
        error => Ok(format!("{what}: {error}.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_are_listed_by_number_under_a_heading() {
        let memory = |text: &str| Memory {
            text: text.into(),
            at: 1,
            embedding: None,
        };
        assert_eq!(
            listed(
                "From memory:",
                &[(7, memory("the key")), (3, memory("the router"))]
            ),
            "From memory:\n7. the key\n3. the router"
        );
    }

    #[test]
    fn user_errors_are_answered_and_store_failures_are_not() {
        let full = Error::MemoryFull { max: 10_000 };
        let text = answered(full, "Not kept").unwrap();
        assert!(
            text.starts_with("Not kept: the box already keeps 10000 memories"),
            "{text}"
        );
        let broken = Error::Store(redb::Error::DatabaseAlreadyOpen);
        assert!(answered(broken, "Not kept").is_err());
    }
}
