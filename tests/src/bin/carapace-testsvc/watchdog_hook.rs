//! `watchdog-hook`: pets PID 1's watchdog every second. When the test asks for it through
//! QEMU's fw_cfg, it stops petting after a while and keeps running, so the test can watch
//! PID 1 notice the missed watchdog. `stall` does the same on every start, unasked: the hung
//! service of a bad release in the update test.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::notify::Notifier;
use crate::test_request;
const PERIOD: Duration = Duration::from_secs(1);
const STOP_AFTER: Duration = Duration::from_secs(5);
/// Soon, so the hardware watchdog resets the box long before a trial could commit.
const STALL_AFTER: Duration = Duration::from_secs(2);

pub fn run(notifier: &Notifier) {
    let stop = test_request::asks_for("stop-petting");
    pet(notifier, PERIOD, stop.then_some(STOP_AFTER));
    println!("watchdog-hook stopping");
}

pub fn stall(notifier: &Notifier) {
    pet(notifier, PERIOD, Some(STALL_AFTER));
    println!("stall: hanging now");
}

/// Pets every `period`; forever, or until `stop_after` has passed.
fn pet(notifier: &Notifier, period: Duration, stop_after: Option<Duration>) {
    let started = Instant::now();
    while stop_after.is_none_or(|limit| started.elapsed() < limit) {
        notifier.notify(board_support::notify::Message::Watchdog);
        sleep(period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn stops_petting_when_asked() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let pipe = board_support::notify_fd::NotifyFd::from_fd(
            std::os::fd::IntoRawFd::into_raw_fd(std::os::fd::OwnedFd::from(writer)),
        )
        .unwrap();
        let notifier = Notifier::from_pipe(pipe);
        pet(
            &notifier,
            Duration::from_millis(10),
            Some(Duration::from_millis(35)),
        );
        drop(notifier);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        let beats = got.lines().count();
        assert!((1..=4).contains(&beats), "{got:?}");
        assert!(got.lines().all(|line| line == "WATCHDOG=1"), "{got:?}");
    }
}
