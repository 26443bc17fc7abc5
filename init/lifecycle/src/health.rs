//! When the box counts as healthy, which is when PID 1 pets the hardware watchdog: every
//! service with `watchdog_sec` said WATCHDOG=1 recently enough, and none is crash-looping.
//! An unhealthy box stops petting and the hardware resets it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const RESTART_WINDOW: Duration = Duration::from_secs(5 * 60);
/// More restarts than this within [`RESTART_WINDOW`] is a crash loop.
pub const MAX_RESTARTS_IN_WINDOW: usize = 5;

/// Restarts of one service within the last five minutes.
#[derive(Default, Debug)]
pub struct RestartWindow {
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    pub fn record(&mut self, now: Instant) {
        self.restarts.push_back(now);
        self.prune(now);
    }

    pub fn count(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.restarts.len()
    }

    pub fn too_many(&mut self, now: Instant) -> bool {
        self.count(now) > MAX_RESTARTS_IN_WINDOW
    }

    /// When the oldest restart leaves the window, the moment a crash loop can end.
    pub fn next_change(&self) -> Option<Instant> {
        self.restarts.front().map(|&oldest| oldest + RESTART_WINDOW)
    }

    fn prune(&mut self, now: Instant) {
        while self
            .restarts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= RESTART_WINDOW)
        {
            self.restarts.pop_front();
        }
    }
}

/// One running service's WATCHDOG=1 deadline.
#[derive(Debug)]
pub struct ServiceWatchdog {
    timeout: Option<Duration>,
    last_ping: Instant,
    /// The current miss was reported; cleared by the next ping.
    pub miss_reported: bool,
}

impl ServiceWatchdog {
    /// `watchdog_sec` 0 means no watchdog. The first deadline counts from the start.
    pub fn new(watchdog_sec: u64, started: Instant) -> Self {
        let timeout = (watchdog_sec > 0).then(|| Duration::from_secs(watchdog_sec));
        ServiceWatchdog {
            timeout,
            last_ping: started,
            miss_reported: false,
        }
    }

    pub fn ping(&mut self, now: Instant) {
        self.last_ping = now;
        self.miss_reported = false;
    }

    /// `None` without a watchdog, or (never, with `watchdog_sec` bounded) past `Instant`'s range.
    pub fn deadline(&self) -> Option<Instant> {
        self.last_ping.checked_add(self.timeout?)
    }

    pub fn overdue(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now > deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_restarts_in_five_minutes_is_a_crash_loop() {
        let start = Instant::now();
        let mut window = RestartWindow::default();
        for i in 0..5 {
            window.record(start + Duration::from_secs(i * 10));
        }
        assert!(!window.too_many(start + Duration::from_secs(50)));
        window.record(start + Duration::from_secs(60));
        assert!(window.too_many(start + Duration::from_secs(60)));
        assert_eq!(window.next_change(), Some(start + RESTART_WINDOW));
        // Five minutes after the first restart it drops out again.
        assert!(!window.too_many(start + RESTART_WINDOW));
        assert_eq!(
            window.count(start + RESTART_WINDOW + Duration::from_secs(60)),
            0
        );
    }

    #[test]
    fn a_watchdog_is_overdue_only_after_its_timeout() {
        let start = Instant::now();
        let mut watchdog = ServiceWatchdog::new(30, start);
        assert!(!watchdog.overdue(start + Duration::from_secs(30)));
        assert!(watchdog.overdue(start + Duration::from_secs(31)));
        watchdog.miss_reported = true;
        watchdog.ping(start + Duration::from_secs(31));
        assert!(!watchdog.miss_reported);
        assert_eq!(watchdog.deadline(), Some(start + Duration::from_secs(61)));
    }

    #[test]
    fn zero_means_no_watchdog() {
        let start = Instant::now();
        let watchdog = ServiceWatchdog::new(0, start);
        assert_eq!(watchdog.deadline(), None);
        assert!(!watchdog.overdue(start + Duration::from_secs(3600)));
    }
}
