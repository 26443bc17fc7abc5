//! The test service: runs inside TEST images only (never release images) under the same PID 1
//! contract as agentd, and prints one line per check for the whole-system tests to read.
//! After its check each mode sleeps, so the supervisor does not restart it.

// The modules live in carapace-testsvc/: a crate root looks for modules in its own directory,
// and cargo would take every file directly in src/bin for a binary of its own.
#[path = "carapace-testsvc/bootcheck.rs"]
mod bootcheck;
#[path = "carapace-testsvc/chatty.rs"]
mod chatty;
#[path = "carapace-testsvc/corrupt_identity.rs"]
mod corrupt_identity;
#[path = "carapace-testsvc/datarate.rs"]
mod datarate;
#[path = "carapace-testsvc/hardening.rs"]
mod hardening;
#[path = "carapace-testsvc/health.rs"]
mod health;
#[path = "carapace-testsvc/logcheck.rs"]
mod logcheck;
#[path = "carapace-testsvc/marker.rs"]
mod marker;
#[path = "carapace-testsvc/mountinfo.rs"]
mod mountinfo;
#[path = "carapace-testsvc/netcheck.rs"]
mod netcheck;
#[path = "carapace-testsvc/notify.rs"]
mod notify;
#[path = "carapace-testsvc/orphans.rs"]
mod orphans;
#[path = "carapace-testsvc/rootcheck.rs"]
mod rootcheck;
#[path = "carapace-testsvc/test_request.rs"]
mod test_request;
#[path = "carapace-testsvc/watchdog_hook.rs"]
mod watchdog_hook;
#[path = "carapace-testsvc/wificheck.rs"]
mod wificheck;
#[path = "carapace-testsvc/wifitrial.rs"]
mod wifitrial;
#[path = "carapace-testsvc/zombies.rs"]
mod zombies;

use std::process::ExitCode;

use crate::notify::Notifier;

const USAGE: &str = "usage: carapace-testsvc <mode>
modes:
  orphans        leave 3 orphaned processes for PID 1 to reap, then count zombies
  health         ask agentd's health socket and print its answer
  rootcheck      print how / is mounted and whether it can be written
  marker         create or print a random marker in $STATE_DIRECTORY
  watchdog-hook  pet PID 1's watchdog every second (stop on request of the test)
  stall          pet PID 1's watchdog for 2 s, then hang (a release with a hung service)
  chatty         print as fast as possible for a minute (on request of the test)
  logcheck       say whether the logger's files on /data hold chatty's last line
  hardening      print the sysctls, the /run, /tmp and /proc mount options, hidepid
  corrupt-identity  garble agentd's identity file (on request of the test)
  netcheck       reach allowed.test over HTTPS, fail by IP and around the stub, kill netd
                 and check again (on request of the test)
  netcheck-other reach allowed.test over HTTPS as a uid without egress (on request)
  wificheck      netd's Wi-Fi status, then kill the test access point (on request)
  wifitrial      Wi-Fi trials on netd's control socket: one left to expire, one committed
                 (on request)
  bootcheck      what a boot_control service is handed: the ESP, the slots' devices
  datarate       /data's write and read throughput (64 MiB, fsynced, read uncached)";

fn main() -> ExitCode {
    let mode = std::env::args_os().nth(1).unwrap_or_default();
    let mode = mode.to_string_lossy();
    match mode.as_ref() {
        // The helpers of `orphans` are not services: they do their bit and exit.
        orphans::CHILD_MODE => return orphans::child(),
        orphans::GRANDCHILD_MODE => return orphans::grandchild(),
        "orphans" => orphans::run(),
        "health" => health::run(),
        "rootcheck" => rootcheck::run(),
        "marker" => marker::run(),
        "watchdog-hook" => watchdog_hook::run(&Notifier::from_env()),
        "stall" => watchdog_hook::stall(&Notifier::from_env()),
        "chatty" => chatty::run(),
        "logcheck" => logcheck::run(),
        "hardening" => hardening::run(),
        "corrupt-identity" => corrupt_identity::run(),
        "netcheck" => netcheck::run(false),
        "netcheck-other" => netcheck::run(true),
        "wificheck" => wificheck::run(),
        "wifitrial" => wifitrial::run(),
        "bootcheck" => bootcheck::run(),
        "datarate" => datarate::run(),
        "" => return usage_error("no mode given"),
        _ => return usage_error(&format!("unknown mode '{mode}'")),
    }
    sleep_forever()
}

fn usage_error(problem: &str) -> ExitCode {
    eprintln!("{problem}\n{USAGE}");
    ExitCode::from(2)
}

fn sleep_forever() -> ! {
    loop {
        std::thread::park();
    }
}
