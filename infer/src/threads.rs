//! How many CPU threads candle uses. Candle 0.11 has three CPU pools: rayon's global pool (matrix
//! products), its own rayon pool and its spinning "barrier" pool (element-wise work). All three
//! take their size from RAYON_NUM_THREADS (CANDLE_NUM_THREADS for the barrier pool, if set)
//! when first used, else from the number of physical cores, and none can be resized later. On
//! a box that shares its cores with agentd, a pool sized to every core oversubscribes them and
//! candle's throughput collapses, so the engine states its thread count and checks that the
//! environment gives candle exactly that.
//!
//! Setting an environment variable is sound only while no other thread can read the
//! environment, hence `pin_cpu_threads` is `unsafe` and belongs at the top of `main`.

use std::num::NonZeroUsize;

use crate::error::{Error, Result};

/// Sets RAYON_NUM_THREADS and CANDLE_NUM_THREADS to `threads` for this process.
///
/// # Safety
///
/// No other thread may exist yet (or at least none that reads or writes the environment, C
/// code included): call it first thing in `main`, before any runtime or pool starts.
pub unsafe fn pin_cpu_threads(threads: NonZeroUsize) {
    let value = threads.to_string();
    // SAFETY: the caller guarantees that no other thread touches the environment now.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", &value);
        std::env::set_var("CANDLE_NUM_THREADS", &value);
    }
}

/// Ok when candle's pools will have `threads` threads; otherwise an error naming the count
/// candle would use instead.
pub fn check_cpu_threads(threads: NonZeroUsize) -> Result<()> {
    let rayon = candle_core::utils::get_num_threads();
    let candle = barrier_pool_threads(rayon, std::env::var("CANDLE_NUM_THREADS").ok().as_deref());
    let asked = threads.get();
    match [rayon, candle].into_iter().find(|&used| used != asked) {
        None => Ok(()),
        Some(candle_would_use) => Err(Error::ThreadsNotPinned {
            asked,
            candle_would_use,
        }),
    }
}

/// The threads candle's pools take in this process (RAYON_NUM_THREADS, else the cores, at
/// least 1): the count for an engine started inside a process that did not pin it (a test
/// harness, whose threads exist before any test runs), so that `check_cpu_threads` agrees.
pub fn cpu_threads_in_use() -> NonZeroUsize {
    NonZeroUsize::new(candle_core::utils::get_num_threads()).unwrap_or(NonZeroUsize::MIN)
}

/// The size candle gives its barrier pool: CANDLE_NUM_THREADS when it is a positive number,
/// else the rayon count (candle-core's utils.rs, 0.11.1).
fn barrier_pool_threads(rayon: usize, candle_num_threads: Option<&str>) -> usize {
    candle_num_threads
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(rayon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barrier_pool_follows_candle_num_threads_only_when_it_is_a_positive_number() {
        assert_eq!(barrier_pool_threads(4, None), 4);
        assert_eq!(barrier_pool_threads(4, Some("2")), 2);
        assert_eq!(barrier_pool_threads(4, Some("0")), 4);
        assert_eq!(barrier_pool_threads(4, Some("two")), 4);
    }

    #[test]
    fn the_count_in_use_is_candles_and_at_least_one() {
        let in_use = cpu_threads_in_use().get();
        assert_eq!(in_use, candle_core::utils::get_num_threads().max(1));
    }

    #[test]
    fn a_count_other_than_candles_is_refused_and_candles_count_is_named() {
        // Whatever this test process's environment says, candle's count is that number, and
        // asking for one more must be refused with candle's count in the error.
        let rayon = candle_core::utils::get_num_threads();
        let candle =
            barrier_pool_threads(rayon, std::env::var("CANDLE_NUM_THREADS").ok().as_deref());
        let asked = NonZeroUsize::new(rayon.max(candle) + 1).unwrap();
        match check_cpu_threads(asked) {
            Err(Error::ThreadsNotPinned {
                asked: named,
                candle_would_use,
            }) => {
                assert_eq!(named, asked.get());
                assert!(candle_would_use == rayon || candle_would_use == candle);
            }
            other => panic!("expected ThreadsNotPinned, got {other:?}"),
        }
    }
}
