//! `orphans`: proves PID 1 reaps orphans. Each helper child starts a grandchild and exits at
//! once, so the grandchild is re-parented to PID 1; when it exits a second later it stays a
//! zombie unless PID 1 reaps it.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::Duration;

use crate::zombies::count_zombies;

pub const CHILD_MODE: &str = "orphan-child";
pub const GRANDCHILD_MODE: &str = "orphan-grandchild";

const ORPHANS: usize = 3;
const GRANDCHILD_LIFETIME: Duration = Duration::from_secs(1);
/// Long enough for the grandchildren to exit and PID 1 to reap them.
const SETTLE: Duration = Duration::from_secs(5);
const SELF_EXE: &str = "/proc/self/exe";

pub fn run() {
    for _ in 0..ORPHANS {
        // `status` waits for the child, so only the grandchild is left over.
        match Command::new(SELF_EXE).arg(CHILD_MODE).status() {
            Ok(status) if status.success() => {}
            Ok(status) => return println!("orphans error=helper child failed: {status}"),
            Err(err) => return println!("orphans error=cannot start helper child: {err}"),
        }
    }
    println!("orphans spawned={ORPHANS}");
    sleep(SETTLE);
    match count_zombies(Path::new("/proc")) {
        Ok(zombies) => println!("orphans zombies={zombies}"),
        Err(err) => println!("orphans error=cannot read /proc: {err}"),
    }
}

/// Starts the grandchild and exits without waiting for it.
pub fn child() -> ExitCode {
    match Command::new(SELF_EXE).arg(GRANDCHILD_MODE).spawn() {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            println!("orphans error=cannot start grandchild: {err}");
            ExitCode::FAILURE
        }
    }
}

pub fn grandchild() -> ExitCode {
    sleep(GRANDCHILD_LIFETIME);
    ExitCode::SUCCESS
}
