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
/// Where the kernel says the longest timeout the watchdog's driver takes.
pub const WATCHDOG_MAX_TIMEOUT: &str = "/sys/class/watchdog/watchdog0/max_timeout";

/// The timeout PID 1 sets: [`HARDWARE_WATCHDOG_S`], or the driver's largest (`max_timeout`'s
/// text) when that is shorter: the Pi 5's PM watchdog takes 15 s at most.
pub fn hardware_watchdog_timeout(max_timeout: Option<&str>) -> u32 {
    match max_timeout.and_then(|text| text.trim().parse::<u32>().ok()) {
        Some(max) if max > 0 && max < HARDWARE_WATCHDOG_S => max,
        _ => HARDWARE_WATCHDOG_S,
    }
}

/// Whether PID 1 finds the box unhealthy now.
pub fn marked_unhealthy() -> bool {
    std::path::Path::new(UNHEALTHY_MARK).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_stays_within_the_drivers_maximum() {
        // The Pi 5's PM watchdog takes at most 15 s; i6300esb far more.
        assert_eq!(hardware_watchdog_timeout(Some("15\n")), 15);
        assert_eq!(hardware_watchdog_timeout(Some("2046\n")), 20);
        assert_eq!(hardware_watchdog_timeout(None), 20);
        assert_eq!(hardware_watchdog_timeout(Some("0")), 20);
        assert_eq!(hardware_watchdog_timeout(Some("x")), 20);
    }
}
