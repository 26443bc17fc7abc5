//! Memories: notes the owner asks the box to keep, many of them, found again by meaning with
//! the local embedding model (local_inference.rs). Facts (tools/facts.rs) are the few short ones
//! that go into every prompt; memories stay in the store until a recall finds them.
//!
//! A memory kept while the engine is down is stored without its vector (nothing is lost to an
//! engine that is restarting) and embedded by the next recall, which saves the vector.

use crate::error::Error;
use crate::local_inference::LocalInference;
use crate::store::{Memory, Store};

/// How many memories a recall returns at most, best first.
pub const RECALLED: usize = 3;
/// The least cosine similarity that counts as a match, halfway between what all-MiniLM-L6-v2
/// gives short notes and questions about them (0.42 to 0.68: "I lost my keys", "flowerpot",
/// "where is the router" to the notes of agentd/tests/agentd.rs) and what it gives unrelated
/// pairs (at most 0.27: "blue" to the flowerpot, the key question to the router).
pub const MIN_SIMILARITY: f32 = 0.35;
/// Memories embedded per request when a recall fills in missing vectors.
const EMBED_BATCH: usize = 32;

/// A memory just kept.
#[derive(Debug)]
pub struct Kept {
    pub id: u64,
    /// Why it is not searchable yet (the engine did not answer); a recall embeds it later.
    pub not_embedded: Option<Error>,
}

/// A memory a recall found.
#[derive(Clone, Debug, PartialEq)]
pub struct Recalled {
    pub id: u64,
    pub memory: Memory,
    pub similarity: f32,
}

/// Keeps `text` (trimmed), with its vector when the engine answers. Refused: too long, or the
/// store is full (Error::MemoryTooLong, Error::MemoryFull).
pub async fn keep(
    store: &Store,
    embeddings: &LocalInference,
    text: &str,
    now: u64,
) -> Result<Kept, Error> {
    let text = text.trim();
    let (embedding, not_embedded) = match embeddings.embed(&[text]).await {
        Ok(mut vectors) => (vectors.pop(), None),
        Err(error) => (None, Some(error)),
    };
    let id = store.add_memory(text, now, embedding)?;
    Ok(Kept { id, not_embedded })
}

/// The memories closest in meaning to `query`: at most [`RECALLED`], each at least
/// [`MIN_SIMILARITY`], best first. Fails when the engine does not answer.
pub async fn recall(
    store: &Store,
    embeddings: &LocalInference,
    query: &str,
) -> Result<Vec<Recalled>, Error> {
    let query = embeddings
        .embed(&[query.trim()])
        .await?
        .pop()
        .unwrap_or_default();
    let mut memories = store.memories()?;
    embed_missing(store, embeddings, &mut memories, query.len()).await?;
    Ok(rank(&query, memories))
}

/// The newest `count` memories, newest first.
pub fn latest(store: &Store, count: usize) -> Result<Vec<(u64, Memory)>, Error> {
    let mut memories = store.memories()?;
    memories.reverse();
    memories.truncate(count);
    Ok(memories)
}

/// Embeds and saves the memories without a vector of `dimensions` numbers (kept while the
/// engine was down, or by a model of another size).
async fn embed_missing(
    store: &Store,
    embeddings: &LocalInference,
    memories: &mut [(u64, Memory)],
    dimensions: usize,
) -> Result<(), Error> {
    let missing: Vec<usize> = (0..memories.len())
        .filter(|&i| {
            memories[i]
                .1
                .embedding
                .as_ref()
                .is_none_or(|v| v.len() != dimensions)
        })
        .collect();
    for batch in missing.chunks(EMBED_BATCH) {
        let texts: Vec<&str> = batch.iter().map(|&i| memories[i].1.text.as_str()).collect();
        let vectors = embeddings.embed(&texts).await?;
        for (&i, vector) in batch.iter().zip(vectors) {
            store.set_memory_embedding(memories[i].0, vector.clone())?;
            memories[i].1.embedding = Some(vector);
        }
    }
    Ok(())
}

/// The memories at least [`MIN_SIMILARITY`] to `query`, best first, at most [`RECALLED`]; the
/// newer first among equals. The vectors are unit length, so cosine is a dot product.
pub fn rank(query: &[f32], memories: Vec<(u64, Memory)>) -> Vec<Recalled> {
    let mut found: Vec<Recalled> = memories
        .into_iter()
        .filter_map(|(id, memory)| {
            let vector = memory.embedding.as_ref()?;
            if vector.len() != query.len() {
                return None;
            }
            let similarity = vector.iter().zip(query).map(|(a, b)| a * b).sum();
            Some(Recalled {
                id,
                memory,
                similarity,
            })
        })
        .filter(|found| found.similarity >= MIN_SIMILARITY)
        .collect();
    found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(b.id.cmp(&a.id)));
    found.truncate(RECALLED);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: u64, embedding: Option<Vec<f32>>) -> (u64, Memory) {
        (
            id,
            Memory {
                text: format!("memory {id}"),
                at: id,
                embedding,
            },
        )
    }

    /// A unit vector at `degrees` from the x axis.
    fn at(degrees: f32) -> Vec<f32> {
        let radians = degrees.to_radians();
        vec![radians.cos(), radians.sin()]
    }

    fn ids(found: &[Recalled]) -> Vec<u64> {
        found.iter().map(|f| f.id).collect()
    }

    #[test]
    fn the_closest_three_above_the_threshold_come_best_first() {
        let memories = vec![
            memory(1, Some(at(60.0))),  // 0.50
            memory(2, Some(at(10.0))),  // 0.98
            memory(3, Some(at(80.0))),  // 0.17: below the threshold
            memory(4, Some(at(30.0))),  // 0.87
            memory(5, Some(at(45.0))),  // 0.71
            memory(6, None),            // not embedded: never found
            memory(7, Some(vec![1.0])), // another model's size: never found
        ];
        let found = rank(&at(0.0), memories);
        assert_eq!(ids(&found), [2, 4, 5]);
        assert!((found[0].similarity - 10f32.to_radians().cos()).abs() < 1e-6);
        assert_eq!(found[0].memory.text, "memory 2");
    }

    #[test]
    fn nothing_close_enough_is_nothing_found_and_ties_go_to_the_newer() {
        let far = vec![memory(1, Some(at(90.0))), memory(2, Some(at(-100.0)))];
        assert!(rank(&at(0.0), far).is_empty());
        let tied = vec![memory(1, Some(at(20.0))), memory(2, Some(at(-20.0)))];
        assert_eq!(ids(&rank(&at(0.0), tied)), [2, 1]);
        // The threshold itself counts.
        let just = vec![memory(1, Some(vec![MIN_SIMILARITY, 0.0]))];
        assert_eq!(ids(&rank(&[1.0, 0.0], just)), [1]);
    }

    #[test]
    fn the_latest_come_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for text in ["a", "b", "c"] {
            store.add_memory(text, 1, None).unwrap();
        }
        let latest: Vec<String> = latest(&store, 2)
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.text)
            .collect();
        assert_eq!(latest, ["c", "b"]);
    }
}
