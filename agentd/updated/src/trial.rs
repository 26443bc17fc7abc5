//! Whether a trial boot of a new slot has proved healthy, failed, or must wait, decided from
//! agentd's health reports. Commit needs agentd's self-test passed and, when agentd's IM link
//! was connected before the update, that link connected again: the owner must still be able
//! to reach the box. PID 1 being up is implied (it started updated and agentd).
//!
//! What is not the new slot's fault must not count against it: when the IM link stays down,
//! the caller probes the update server; if that is unreachable too, the network is down, and
//! the trial waits (with its boot tries refilled, so power cuts in the meantime cost nothing)
//! instead of rolling back.

use std::time::{Duration, Instant};

use board_support::update_control::SELF_TEST_PASSED;

/// How long a trial boot waits for agentd to be healthy, stable and back on its IM link
/// before it rolls back.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(180);
/// agentd reports within seconds of its start; a trial boot in which it has not for this
/// long (it crash-loops, or hangs before its first report) rolls back without waiting for
/// PID 1's crash-loop verdict and the watchdog reset, which would cost the slot a boot try
/// each.
pub const REPORT_DEADLINE: Duration = Duration::from_secs(60);
/// agentd must have run this long without a restart, and the trial been watched this long,
/// before a commit: longer than the hardware watchdog's 20 s, so a box PID 1 finds unhealthy
/// (a service crash-looping or missing its watchdog) is reset before it could commit. The
/// default; an image sets its own with `trial_stable_s` in `[update]` (25 to 120 s,
/// board_support::update_config).
pub const STABLE_FOR: Duration =
    Duration::from_secs(board_support::update_config::DEFAULT_TRIAL_STABLE_S as u64);
/// A report older than this is no report: agentd reports every few seconds while it runs.
pub const REPORT_FRESH: Duration = Duration::from_secs(15);
/// Boots of a new slot that never committed (power cuts, resets while the network was down)
/// before the box gives up on it anyway.
pub const MAX_TRIAL_BOOTS: u32 = 5;

/// agentd's latest report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub self_test: String,
    pub im_connected: bool,
    /// When this agentd process started (from its uptime), and when the report came.
    pub agentd_started: Instant,
    pub received: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Commit,
    Rollback(String),
    Wait,
    /// agentd is well but its IM link is not back: roll back only if the network works.
    ProbeNetwork,
}

/// `waited`: since the trial's judging began; `box_healthy_for`: since PID 1 last found the
/// box unhealthy (board_support::box_health), or as `waited`; `stable_for`: the stability
/// window (`STABLE_FOR` unless the image sets another); `now`: the clock the reports' times
/// are on.
pub fn judge(
    health: Option<&Health>,
    im_was_connected: bool,
    waited: Duration,
    box_healthy_for: Duration,
    stable_for: Duration,
    deadline: Duration,
    now: Instant,
) -> Verdict {
    let fresh = health.filter(|h| now.saturating_duration_since(h.received) <= REPORT_FRESH);
    let Some(health) = fresh else {
        return match waited < REPORT_DEADLINE.min(deadline) {
            true => Verdict::Wait,
            false => Verdict::Rollback(format!(
                "agentd has not reported for {} s (it is not running, or it hangs)",
                REPORT_DEADLINE.min(deadline).as_secs()
            )),
        };
    };
    if health.self_test != SELF_TEST_PASSED {
        return Verdict::Rollback(format!("agentd's self-test failed: {}", health.self_test));
    }
    let link_back = health.im_connected || !im_was_connected;
    let agentd_stable = now.saturating_duration_since(health.agentd_started) >= stable_for;
    let box_stable = box_healthy_for >= stable_for;
    let stable = agentd_stable && box_stable && waited >= stable_for;
    match (link_back, stable) {
        (true, true) => Verdict::Commit,
        _ if waited < deadline => Verdict::Wait,
        (true, false) if !box_stable => Verdict::Rollback(format!(
            "PID 1 found a service unhealthy (a missed watchdog or a crash loop) within the \
             last {} s",
            stable_for.as_secs()
        )),
        (true, false) => Verdict::Rollback(format!(
            "agentd kept restarting: it never ran {} s in a row",
            stable_for.as_secs()
        )),
        (false, _) => Verdict::ProbeNetwork,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(180);

    /// A report that just came from an agentd running for `uptime`.
    fn health(self_test: &str, im_connected: bool, now: Instant, uptime: Duration) -> Health {
        Health {
            self_test: self_test.into(),
            im_connected,
            agentd_started: now - uptime,
            received: now,
        }
    }

    /// Judged with the default window, the box healthy as long as the trial was watched.
    fn judged(
        health: Option<&Health>,
        im_was_connected: bool,
        waited: Duration,
        now: Instant,
    ) -> Verdict {
        judge(
            health,
            im_was_connected,
            waited,
            waited,
            STABLE_FOR,
            DEADLINE,
            now,
        )
    }

    fn later(now: Instant) -> Instant {
        now + Duration::from_secs(3600)
    }

    #[test]
    fn a_healthy_agentd_with_its_link_back_commits_once_it_ran_long_enough() {
        let now = later(Instant::now());
        let ok = health(SELF_TEST_PASSED, true, now, STABLE_FOR);
        assert_eq!(judged(Some(&ok), true, STABLE_FOR, now), Verdict::Commit);
        let young = health(SELF_TEST_PASSED, true, now, Duration::from_secs(5));
        assert_eq!(judged(Some(&young), true, STABLE_FOR, now), Verdict::Wait);
        assert_eq!(
            judged(Some(&ok), true, Duration::from_secs(5), now),
            Verdict::Wait,
            "the trial itself is watched for the window too"
        );
        let no_link = health(SELF_TEST_PASSED, false, now, STABLE_FOR);
        assert_eq!(
            judged(Some(&no_link), false, STABLE_FOR, now),
            Verdict::Commit,
            "a box whose link was down before the update need not bring it up"
        );
    }

    #[test]
    fn a_failed_self_test_rolls_back_at_once() {
        let now = later(Instant::now());
        let bad = health("the store does not open", true, now, Duration::ZERO);
        let Verdict::Rollback(reason) = judged(Some(&bad), true, Duration::ZERO, now) else {
            panic!("not a rollback");
        };
        assert_eq!(reason, "agentd's self-test failed: the store does not open");
    }

    #[test]
    fn silence_or_a_stale_report_waits_a_minute_then_rolls_back() {
        let now = later(Instant::now());
        assert_eq!(
            judged(None, true, Duration::from_secs(59), now),
            Verdict::Wait
        );
        let Verdict::Rollback(reason) = judged(None, false, REPORT_DEADLINE, now) else {
            panic!("not a rollback");
        };
        assert!(reason.contains("has not reported for 60 s"), "{reason}");
        let mut stale = health(SELF_TEST_PASSED, true, now, DEADLINE);
        stale.received = now - Duration::from_secs(60);
        assert!(matches!(
            judged(Some(&stale), true, DEADLINE, now),
            Verdict::Rollback(_)
        ));
    }

    #[test]
    fn an_agentd_that_keeps_restarting_is_rolled_back_at_the_deadline() {
        let now = later(Instant::now());
        let restarted = health(SELF_TEST_PASSED, true, now, Duration::from_secs(4));
        let Verdict::Rollback(reason) = judged(Some(&restarted), true, DEADLINE, now) else {
            panic!("not a rollback");
        };
        assert!(reason.contains("kept restarting"), "{reason}");
    }

    #[test]
    fn a_box_pid_1_finds_unhealthy_is_not_committed() {
        let now = later(Instant::now());
        let ok = health(SELF_TEST_PASSED, true, now, DEADLINE);
        let lately = Duration::from_secs(10);
        assert_eq!(
            judge(
                Some(&ok),
                true,
                STABLE_FOR,
                lately,
                STABLE_FOR,
                DEADLINE,
                now
            ),
            Verdict::Wait,
            "a service missed its watchdog 10 s ago: the window starts again"
        );
        let Verdict::Rollback(reason) =
            judge(Some(&ok), true, DEADLINE, lately, STABLE_FOR, DEADLINE, now)
        else {
            panic!("not a rollback");
        };
        assert!(
            reason.contains("PID 1 found a service unhealthy"),
            "{reason}"
        );
        assert_eq!(judged(Some(&ok), true, STABLE_FOR, now), Verdict::Commit);
    }

    #[test]
    fn a_link_that_stays_down_asks_whether_the_network_works() {
        let now = later(Instant::now());
        let no_link = health(SELF_TEST_PASSED, false, now, DEADLINE);
        assert_eq!(
            judged(Some(&no_link), true, Duration::from_secs(100), now),
            Verdict::Wait
        );
        assert_eq!(
            judged(Some(&no_link), true, DEADLINE, now),
            Verdict::ProbeNetwork
        );
    }

    #[test]
    fn an_image_s_shorter_window_commits_sooner_but_not_before_it_ends() {
        let now = later(Instant::now());
        let window =
            Duration::from_secs(u64::from(board_support::update_config::MIN_TRIAL_STABLE_S));
        let short = window - Duration::from_secs(1);
        let ok = health(SELF_TEST_PASSED, true, now, window);
        assert_eq!(
            judge(Some(&ok), true, window, window, window, DEADLINE, now),
            Verdict::Commit
        );
        assert_eq!(
            judged(Some(&ok), true, window, now),
            Verdict::Wait,
            "the default window is longer"
        );
        assert_eq!(
            judge(Some(&ok), true, short, window, window, DEADLINE, now),
            Verdict::Wait,
            "the trial is watched for the whole window"
        );
        assert_eq!(
            judge(Some(&ok), true, window, short, window, DEADLINE, now),
            Verdict::Wait,
            "PID 1 found the box unhealthy within the window"
        );
        let young = health(SELF_TEST_PASSED, true, now, short);
        assert_eq!(
            judge(Some(&young), true, window, window, window, DEADLINE, now),
            Verdict::Wait,
            "agentd restarted within the window"
        );
        let Verdict::Rollback(reason) = judge(
            Some(&young),
            true,
            DEADLINE,
            DEADLINE,
            window,
            DEADLINE,
            now,
        ) else {
            panic!("not a rollback");
        };
        assert!(
            reason.contains(&format!("never ran {} s in a row", window.as_secs())),
            "{reason}"
        );
    }
}
