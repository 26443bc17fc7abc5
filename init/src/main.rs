//! Carapace's PID 1. The same binary runs twice: as /init in the initramfs (stage 1, chosen
//! by /initramfs-release existing) and as /sbin/init on the verified root (stage 2).
//! docs/boot-contract.md is what it promises the builder, agentd and the tests.
//!
//! PID 1 must never panic (the kernel would panic with it) and never wait on a service; an
//! error that ends a stage is printed as a FATAL line and the box reboots.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// A `carapace:` console line at info level.
macro_rules! log_info {
    ($($arg:tt)*) => {
        $crate::console::emit($crate::console::Level::Info, &format!("carapace: {}", format_args!($($arg)*)))
    };
}

/// A `carapace:` console line at error level (`<3>` in kmsg).
macro_rules! log_error {
    ($($arg:tt)*) => {
        $crate::console::emit($crate::console::Level::Error, &format!("carapace: {}", format_args!($($arg)*)))
    };
}

mod cgroup;
mod console;
mod data_mount;
mod degraded;
mod disk_helper;
mod dm_verity;
mod error;
mod firewall;
mod hostname;
mod loopback;
mod modules;
mod mounts;
mod oneshot;
mod power_button;
mod proc_status;
mod root_check;
mod service_table;
mod shutdown;
mod signals;
mod spawn;
mod stage1;
mod stage2;
mod stdio;
mod supervisor;
mod switch_root;
mod sysctl;
mod unready_boots;
mod watchdog;

use std::path::Path;
use std::time::Duration;

use rustix::system::RebootCommand;

const FATAL_REBOOT_DELAY: Duration = Duration::from_secs(10);

fn main() {
    if rustix::process::getpid() != rustix::process::Pid::INIT {
        eprintln!("init: this is Carapace's PID 1; it only runs as process 1");
        std::process::exit(2);
    }
    let result = if Path::new(stage1::MARKER).exists() {
        stage1::run()
    } else {
        stage2::run()
    };
    match result {
        Ok(never) => match never {},
        Err(err) => fatal(&err),
    }
}

/// The end of a boot that went wrong: say what, give the console time to be read, reboot.
fn fatal(err: &error::Error) -> ! {
    let what = err.to_string().replace('\n', " ");
    log_error!(
        "FATAL {what}; rebooting in {} s",
        FATAL_REBOOT_DELAY.as_secs()
    );
    // /data may be mounted; its journal covers the rest.
    rustix::fs::sync();
    console::drain(Duration::from_secs(5));
    std::thread::sleep(FATAL_REBOOT_DELAY);
    let _ = rustix::system::reboot(RebootCommand::Restart);
    // Only reached if the kernel refused; returning from PID 1 would panic the kernel, which
    // with panic=10 also reboots, but this keeps the FATAL line the last thing on screen.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
