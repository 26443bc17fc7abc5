//! Whether a trial boot of a new slot has proved healthy, failed, or must wait, decided from
//! agentd's health reports. Commit needs agentd's self-test passed and, when agentd's IM link
//! was connected before the update, that link connected again: the owner must still be able
//! to reach the box. PID 1 being up is implied (it started updated and agentd).
//!
//! What is not the new slot's fault must not count against it: when the IM link stays down,
//! the caller probes the update server; if that is unreachable too, the network is down, and
//! the trial waits (with its boot tries refilled, so power cuts in the meantime cost nothing)
//! instead of rolling back.

use std::time::Duration;

use board_support::update_control::SELF_TEST_PASSED;

/// How long a trial boot waits for agentd to report healthy before it rolls back.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(180);
/// Boots of a new slot that never committed (power cuts, resets while the network was down)
/// before the box gives up on it anyway.
pub const MAX_TRIAL_BOOTS: u32 = 5;

/// agentd's latest report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub self_test: String,
    pub im_connected: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Commit,
    Rollback(String),
    Wait,
    /// agentd is well but its IM link is not back: roll back only if the network works.
    ProbeNetwork,
}

pub fn judge(
    health: Option<&Health>,
    im_was_connected: bool,
    waited: Duration,
    deadline: Duration,
) -> Verdict {
    match health {
        Some(health) if health.self_test != SELF_TEST_PASSED => {
            Verdict::Rollback(format!("agentd's self-test failed: {}", health.self_test))
        }
        Some(health) if health.im_connected || !im_was_connected => Verdict::Commit,
        _ if waited < deadline => Verdict::Wait,
        Some(_) => Verdict::ProbeNetwork,
        None => Verdict::Rollback(format!(
            "agentd did not report healthy within {} s",
            deadline.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(180);

    fn health(self_test: &str, im_connected: bool) -> Health {
        Health {
            self_test: self_test.into(),
            im_connected,
        }
    }

    #[test]
    fn healthy_agentd_with_its_link_back_commits() {
        let ok = health(SELF_TEST_PASSED, true);
        assert_eq!(
            judge(Some(&ok), true, Duration::ZERO, DEADLINE),
            Verdict::Commit
        );
        let no_link = health(SELF_TEST_PASSED, false);
        assert_eq!(
            judge(Some(&no_link), false, Duration::ZERO, DEADLINE),
            Verdict::Commit,
            "a box whose link was down before the update need not bring it up"
        );
    }

    #[test]
    fn a_failed_self_test_rolls_back_at_once() {
        let bad = health("the store does not open", true);
        let Verdict::Rollback(reason) = judge(Some(&bad), true, Duration::ZERO, DEADLINE) else {
            panic!("not a rollback");
        };
        assert_eq!(reason, "agentd's self-test failed: the store does not open");
    }

    #[test]
    fn silence_waits_until_the_deadline_then_rolls_back() {
        assert_eq!(
            judge(None, true, Duration::from_secs(179), DEADLINE),
            Verdict::Wait
        );
        let Verdict::Rollback(reason) = judge(None, false, DEADLINE, DEADLINE) else {
            panic!("not a rollback");
        };
        assert!(
            reason.contains("did not report healthy within 180 s"),
            "{reason}"
        );
    }

    #[test]
    fn a_link_that_stays_down_asks_whether_the_network_works() {
        let no_link = health(SELF_TEST_PASSED, false);
        assert_eq!(
            judge(Some(&no_link), true, Duration::from_secs(10), DEADLINE),
            Verdict::Wait
        );
        assert_eq!(
            judge(Some(&no_link), true, DEADLINE, DEADLINE),
            Verdict::ProbeNetwork
        );
    }
}
