//! PID 1's verdict on the box, for the update service: while a service is overdue on its
//! watchdog or crash-looping, PID 1 stops petting the hardware watchdog (the box resets when
//! it runs out) and keeps this file in place. updated does not commit a trial boot while it
//! is there, and restarts the trial's stability window when it goes: a release whose box
//! PID 1 finds unhealthy is never committed, however soon the window would end.
//!
//! On tmpfs, created and removed only when the verdict changes; nothing else writes it.

pub const UNHEALTHY_MARK: &str = "/run/carapace/unhealthy";
/// The hardware watchdog's timeout PID 1 sets: once it stops petting, the box resets within
/// this long.
pub const HARDWARE_WATCHDOG_S: u32 = 20;

/// Whether PID 1 finds the box unhealthy now.
pub fn marked_unhealthy() -> bool {
    std::path::Path::new(UNHEALTHY_MARK).exists()
}
