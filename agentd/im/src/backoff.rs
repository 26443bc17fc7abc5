//! How long a channel's receiver waits before trying again: exponential backoff with full
//! jitter (a random wait between zero and a ceiling that doubles from 1 s to 60 s), so that
//! many boxes cut off by the same outage do not come back in step. The server's own word wins
//! where it gives one (429 retry_after), and refused credentials wait long: retrying cannot
//! fix them, and hammering the API with a bad token gets the bot limited.

use std::time::Duration;

use crate::Error;

#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    unauthorized: Duration,
    /// The ceiling of the next random wait.
    ceiling: Duration,
}

impl Backoff {
    /// `first` doubles on each failure up to `max`; refused credentials wait `unauthorized`.
    /// Tests pass milliseconds.
    pub fn new(first: Duration, max: Duration, unauthorized: Duration) -> Backoff {
        Backoff {
            first,
            max,
            unauthorized,
            ceiling: first,
        }
    }

    /// 1 s doubling to 60 s; 5 minutes after refused credentials.
    pub fn standard() -> Backoff {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(5 * 60),
        )
    }

    /// The wait before trying again after `error`.
    pub fn after(&mut self, error: &Error) -> Duration {
        match error {
            Error::RateLimited { retry_after, .. } => *retry_after,
            Error::Unauthorized { .. } => self.unauthorized,
            _ => self.next_failure(),
        }
    }

    /// The wait after one more failure in a row: random up to the ceiling, which then doubles.
    pub fn next_failure(&mut self) -> Duration {
        let wait = jitter(self.ceiling, random());
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        wait
    }

    /// After a success the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.ceiling = self.first;
    }
}

/// A wait between zero and `ceiling`, picked by `random`.
fn jitter(ceiling: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

fn random() -> u64 {
    // Without the kernel's randomness (it never fails on Linux ≥ 3.17) the wait is the full
    // ceiling: plain exponential backoff, still safe.
    getrandom::u64().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn unreachable() -> Error {
        Error::Unreachable {
            channel: "test",
            detail: "down".into(),
        }
    }

    #[test]
    fn the_ceiling_doubles_to_the_maximum_and_resets() {
        let mut backoff = Backoff::standard();
        let mut ceilings = Vec::new();
        for _ in 0..9 {
            ceilings.push(backoff.ceiling.as_secs());
            let wait = backoff.after(&unreachable());
            assert!(wait <= Duration::from_secs(*ceilings.last().unwrap()));
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.ceiling, SECOND);
    }

    #[test]
    fn the_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(jitter(SECOND, 0), Duration::ZERO);
        assert_eq!(jitter(SECOND, 1_000_000_000), SECOND);
        assert_eq!(jitter(SECOND, 1_000_000_001), Duration::ZERO);
        assert_eq!(jitter(Duration::ZERO, 12345), Duration::ZERO);
        // Real randomness: 20 draws up to 60 s are not all the same.
        let mut backoff = Backoff::new(Duration::from_secs(60), Duration::from_secs(60), SECOND);
        let waits: Vec<Duration> = (0..20).map(|_| backoff.next_failure()).collect();
        assert!(waits.iter().any(|wait| *wait != waits[0]), "{waits:?}");
    }

    #[test]
    fn the_server_and_the_credentials_set_their_own_waits() {
        let mut backoff = Backoff::standard();
        let limited = Error::RateLimited {
            channel: "test",
            retry_after: Duration::from_secs(17),
            detail: String::new(),
        };
        assert_eq!(backoff.after(&limited), Duration::from_secs(17));
        let refused = Error::Unauthorized {
            channel: "test",
            detail: String::new(),
        };
        assert_eq!(backoff.after(&refused), Duration::from_secs(300));
        // Neither counts as a failure in a row.
        assert_eq!(backoff.ceiling, SECOND);
    }
}
