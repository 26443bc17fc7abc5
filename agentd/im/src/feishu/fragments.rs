//! Events too big for one frame come in `sum` frames sharing a `message_id` header, each with
//! its `seq` (0-based). The parts are put back together in `seq` order; a part alone waits at
//! most [`KEEP`] for the others, as the SDK's cache does. Whatever is dropped here (late,
//! malformed, over the memory cap) was never acknowledged, so the server sends it again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the parts of an incomplete event are kept after the last one arrived.
pub(super) const KEEP: Duration = Duration::from_secs(5);
/// More parts than this is not an event we would take: a guard on what a header may allocate.
const MAX_PARTS: usize = 64;
/// All incomplete events together may hold this much.
const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub(super) struct Fragments {
    partial: HashMap<String, Partial>,
}

struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
    touched: Instant,
}

impl Fragments {
    /// Adds part `seq` of `sum`; returns the whole payload once every part is there.
    pub fn add(
        &mut self,
        message_id: &str,
        sum: usize,
        seq: usize,
        payload: Vec<u8>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        self.partial
            .retain(|_, partial| now.saturating_duration_since(partial.touched) < KEEP);
        if sum <= 1 {
            return Some(payload);
        }
        if sum > MAX_PARTS || seq >= sum {
            return None;
        }
        let pending: usize = self.partial.values().map(|partial| partial.bytes).sum();
        if pending + payload.len() > MAX_PENDING_BYTES {
            self.partial.remove(message_id);
            return None;
        }
        let partial = self
            .partial
            .entry(message_id.to_string())
            .or_insert_with(|| Partial {
                parts: vec![None; sum],
                bytes: 0,
                touched: now,
            });
        // A part that disagrees about the count starts the event over.
        if partial.parts.len() != sum {
            *partial = Partial {
                parts: vec![None; sum],
                bytes: 0,
                touched: now,
            };
        }
        partial.touched = now;
        let slot = partial.parts.get_mut(seq)?;
        let replaced = slot.replace(payload).map(|old| old.len()).unwrap_or(0);
        let added = slot.as_ref().map(Vec::len).unwrap_or(0);
        partial.bytes = partial.bytes - replaced + added;
        if partial.parts.iter().any(Option::is_none) {
            return None;
        }
        let partial = self.partial.remove(message_id)?;
        Some(partial.parts.into_iter().flatten().flatten().collect())
    }

    /// How many events wait for parts (tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_frame_passes_straight_through() {
        let mut fragments = Fragments::default();
        let now = Instant::now();
        assert_eq!(
            fragments.add("m", 1, 0, b"ab".to_vec(), now),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            fragments.add("m", 0, 0, b"cd".to_vec(), now),
            Some(b"cd".to_vec())
        );
        assert_eq!(fragments.waiting(), 0);
    }

    #[test]
    fn parts_are_joined_in_seq_order_whatever_order_they_come_in() {
        let mut fragments = Fragments::default();
        let now = Instant::now();
        assert_eq!(fragments.add("m", 3, 2, b"3".to_vec(), now), None);
        assert_eq!(fragments.add("other", 2, 0, b"x".to_vec(), now), None);
        assert_eq!(fragments.add("m", 3, 0, b"1".to_vec(), now), None);
        assert_eq!(
            fragments.add("m", 3, 1, b"2".to_vec(), now),
            Some(b"123".to_vec())
        );
        assert_eq!(fragments.waiting(), 1, "the other event still waits");
    }

    #[test]
    fn a_part_alone_for_too_long_is_forgotten() {
        let mut fragments = Fragments::default();
        let start = Instant::now();
        assert_eq!(fragments.add("m", 2, 0, b"1".to_vec(), start), None);
        let late = start + KEEP + Duration::from_millis(1);
        assert_eq!(fragments.add("m", 2, 1, b"2".to_vec(), late), None);
        assert_eq!(fragments.waiting(), 1, "only the late part waits now");
        // Within the window both halves meet.
        let mut fragments = Fragments::default();
        assert_eq!(fragments.add("m", 2, 0, b"1".to_vec(), start), None);
        let soon = start + KEEP - Duration::from_millis(1);
        assert_eq!(
            fragments.add("m", 2, 1, b"2".to_vec(), soon),
            Some(b"12".to_vec())
        );
    }

    #[test]
    fn odd_headers_and_oversized_events_are_dropped() {
        let mut fragments = Fragments::default();
        let now = Instant::now();
        assert_eq!(fragments.add("m", 2, 2, b"x".to_vec(), now), None);
        assert_eq!(
            fragments.add("m", MAX_PARTS + 1, 0, b"x".to_vec(), now),
            None
        );
        assert_eq!(fragments.waiting(), 0);
        let big = vec![0; MAX_PENDING_BYTES / 2 + 1];
        assert_eq!(fragments.add("a", 2, 0, big.clone(), now), None);
        assert_eq!(fragments.add("b", 2, 0, big, now), None);
        assert_eq!(fragments.waiting(), 1, "the second would pass the cap");
        // A part that changes the count starts over; a repeated part replaces the first.
        assert_eq!(fragments.add("c", 2, 0, b"1".to_vec(), now), None);
        assert_eq!(fragments.add("c", 3, 0, b"1".to_vec(), now), None);
        assert_eq!(fragments.add("c", 3, 1, b"2".to_vec(), now), None);
        assert_eq!(fragments.add("c", 3, 1, b"B".to_vec(), now), None);
        assert_eq!(
            fragments.add("c", 3, 2, b"3".to_vec(), now),
            Some(b"1B3".to_vec())
        );
    }
}
