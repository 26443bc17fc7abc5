//! `watchdog-hook`: pets PID 1's watchdog every second. When the test asks for it through
//! QEMU's fw_cfg, it stops petting after a while and keeps running, so the test can watch
//! PID 1 notice the missed watchdog.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::notify::Notifier;

const TEST_REQUEST: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/carapace.test/raw";
const PERIOD: Duration = Duration::from_secs(1);
const STOP_AFTER: Duration = Duration::from_secs(5);

pub fn run(notifier: &Notifier) {
    let stop = fs::read_to_string(TEST_REQUEST).is_ok_and(|request| asks_to_stop(&request));
    pet(notifier, PERIOD, stop.then_some(STOP_AFTER));
    println!("watchdog-hook stopping");
}

/// Pets every `period`; forever, or until `stop_after` has passed.
fn pet(notifier: &Notifier, period: Duration, stop_after: Option<Duration>) {
    let started = Instant::now();
    while stop_after.is_none_or(|limit| started.elapsed() < limit) {
        notifier.notify("WATCHDOG=1");
        sleep(period);
    }
}

fn asks_to_stop(request: &str) -> bool {
    request.trim() == "stop-petting"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn stop_request() {
        assert!(asks_to_stop("stop-petting\n"));
        assert!(asks_to_stop("  stop-petting"));
        assert!(!asks_to_stop("stop"));
        assert!(!asks_to_stop(""));
    }

    #[test]
    fn stops_petting_when_asked() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let notifier = Notifier::from_file(std::os::fd::OwnedFd::from(writer).into());
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
