//! What waits for the serial console, which at 115200 baud takes ~11 bytes a millisecond:
//! PID 1's own lines, then each service's lines in a bounded ring of its own, taken in turn.
//! A service that prints faster than the console can take loses its oldest lines (counted),
//! and neither PID 1's lines nor the other services' lines wait behind it.

use std::collections::VecDeque;

/// PID 1's own lines: a boot's worth, so none is lost while a service floods.
pub const OWN_BYTES: usize = 64 * 1024;
/// Each service's lines: several seconds of console time.
pub const SERVICE_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Ring {
    /// Adds `line`, dropping the oldest lines past `max` bytes; returns how many it dropped.
    fn push(&mut self, line: String, max: usize) -> u64 {
        self.bytes += line.len();
        self.lines.push_back(line);
        let mut dropped = 0;
        while self.bytes > max {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            dropped += 1;
        }
        dropped
    }

    fn pop(&mut self) -> Option<String> {
        let line = self.lines.pop_front()?;
        self.bytes -= line.len();
        Some(line)
    }
}

#[derive(Default)]
pub struct ConsoleQueue {
    own: Ring,
    services: Vec<(String, Ring)>,
    /// The service whose line goes next, so each gets its share.
    turn: usize,
    /// Lines dropped since boot.
    pub dropped: u64,
}

impl ConsoleQueue {
    /// Queues one of PID 1's own lines.
    pub fn push_own(&mut self, line: String) {
        self.dropped += self.own.push(line, OWN_BYTES);
    }

    /// Queues a line of service `name`.
    pub fn push_service(&mut self, name: &str, line: String) {
        let index = match self.services.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.services.push((name.to_owned(), Ring::default()));
                self.services.len() - 1
            }
        };
        if let Some((_, ring)) = self.services.get_mut(index) {
            self.dropped += ring.push(line, SERVICE_BYTES);
        }
    }

    /// The next line to write: PID 1's first, then the services' in turn.
    pub fn pop(&mut self) -> Option<String> {
        if let Some(line) = self.own.pop() {
            return Some(line);
        }
        let count = self.services.len();
        for step in 0..count {
            let index = (self.turn + step) % count;
            if let Some(line) = self
                .services
                .get_mut(index)
                .and_then(|(_, ring)| ring.pop())
            {
                self.turn = (index + 1) % count;
                return Some(line);
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.own.lines.is_empty() && self.services.iter().all(|(_, r)| r.lines.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_lines_go_first_then_services_take_turns() {
        let mut queue = ConsoleQueue::default();
        queue.push_service("a", "a1".into());
        queue.push_service("a", "a2".into());
        queue.push_service("a", "a3".into());
        queue.push_service("b", "b1".into());
        queue.push_own("own".into());
        let order: Vec<String> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, ["own", "a1", "b1", "a2", "a3"]);
        assert!(queue.is_empty());
        assert_eq!(queue.dropped, 0);
    }

    #[test]
    fn a_flooding_service_loses_its_oldest_lines_only() {
        let mut queue = ConsoleQueue::default();
        queue.push_service("quiet", "quiet line".into());
        let line = "x".repeat(1023);
        for i in 0..100 {
            queue.push_service("chatty", format!("{i:03}{line}"));
        }
        // 16 KiB holds 15 lines of 1026 bytes; 85 were dropped.
        assert_eq!(queue.dropped, 85);
        assert_eq!(queue.pop().as_deref(), Some("quiet line"));
        let first = queue.pop().expect("a chatty line");
        assert!(first.starts_with("085"), "{}", &first[..3]);
        assert_eq!(std::iter::from_fn(|| queue.pop()).count(), 14);
    }

    #[test]
    fn own_lines_are_bounded_too() {
        let mut queue = ConsoleQueue::default();
        let line = "y".repeat(1024);
        for _ in 0..65 {
            queue.push_own(line.clone());
        }
        assert_eq!(queue.dropped, 1);
        assert_eq!(std::iter::from_fn(|| queue.pop()).count(), 64);
    }
}
