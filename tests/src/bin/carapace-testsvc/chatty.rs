//! `chatty`: when the test asks for it, prints lines as fast as it can for a minute, to
//! prove a flooding service cannot starve PID 1 (its watchdog petting, its own lines).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::test_request;

const FLOOD_FOR: Duration = Duration::from_secs(60);
/// Long lines: more bytes than a serial console takes for each line the service writes.
const PADDING: &str = "the quick brown fox jumps over the lazy dog";

pub fn run() {
    if !test_request::asks_for("chatty") {
        println!("chatty idle");
        return;
    }
    println!("chatty start");
    let started = Instant::now();
    let mut lines: u64 = 0;
    let stdout = std::io::stdout();
    while started.elapsed() < FLOOD_FOR {
        // One write per line, as a chatty service with a line-buffered stdout would do.
        let mut out = stdout.lock();
        if writeln!(
            out,
            "chatty line {lines} {PADDING} {PADDING} {PADDING} {PADDING}"
        )
        .is_err()
        {
            break;
        }
        lines += 1;
    }
    println!("chatty done lines={lines}");
}
