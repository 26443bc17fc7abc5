//! `logcheck`: reads the logger's files on /data (it runs as the logger's uid) and says
//! whether the line `chatty done` reached them: once at start (from an earlier boot: the log
//! survives reboots) and once it appears (this boot).

use std::thread::sleep;
use std::time::{Duration, Instant};

const FILES: [&str; 2] = ["/data/logger/console.log.1", "/data/logger/console.log"];
const NEEDLE: &str = "chatty: chatty done";
const WATCH_FOR: Duration = Duration::from_secs(300);
const PERIOD: Duration = Duration::from_secs(2);

pub fn run() {
    let (lines, bytes, found) = scan();
    println!(
        "logcheck start lines={lines} bytes={bytes} chatty_done={}",
        if found { "yes" } else { "no" }
    );
    let started = Instant::now();
    while started.elapsed() < WATCH_FOR {
        let (lines, bytes, found) = scan();
        if found {
            println!("logcheck chatty_done lines={lines} bytes={bytes}");
            return;
        }
        sleep(PERIOD);
    }
    println!("logcheck gave_up");
}

/// Lines and bytes in both files, and whether the needle is in them.
fn scan() -> (usize, usize, bool) {
    let mut totals = (0, 0, false);
    for file in FILES {
        if let Ok(bytes) = std::fs::read(file) {
            let text = String::from_utf8_lossy(&bytes);
            totals.0 += text.lines().count();
            totals.1 += bytes.len();
            totals.2 |= text.contains(NEEDLE);
        }
    }
    totals
}
