//! How long to wait before restarting a service that exited: 1 s, doubling up to 60 s, so a
//! crashing service neither spins the CPU nor waits long once the cause is gone; a run of 60 s
//! or more counts as healthy and starts the sequence again.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(60);
pub const RESET_AFTER_UPTIME: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: INITIAL }
    }
}

impl Backoff {
    /// The delay before the next start of a service that ran for `uptime`.
    pub fn on_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= RESET_AFTER_UPTIME {
            self.next = INITIAL;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(delays: &[Duration]) -> Vec<u64> {
        delays.iter().map(Duration::as_secs).collect()
    }

    #[test]
    fn doubles_up_to_a_minute() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..9)
            .map(|_| backoff.on_exit(Duration::from_millis(10)))
            .collect();
        assert_eq!(secs(&delays), [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_minute_of_uptime_resets_it() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.on_exit(Duration::ZERO);
        }
        assert_eq!(
            backoff.on_exit(Duration::from_secs(59)),
            Duration::from_secs(32)
        );
        assert_eq!(backoff.on_exit(Duration::from_secs(60)), INITIAL);
        assert_eq!(backoff.on_exit(Duration::ZERO), Duration::from_secs(2));
    }
}
