//! Boots an image in QEMU and reads its readiness and idle-memory lines off the serial console.
//! Both systems boot the same way: the board's QEMU machine and UEFI firmware, systemd-boot,
//! the kernel, on a qcow2 overlay.

use std::path::Path;
use std::time::Duration;

use carapace_image::board::Board;
use carapace_image::qemu::{Accel, Vm, VmConfig, create_overlay};

use super::error::{Context, Result, fail};

/// Under TCG on a busy two-core machine a boot has taken up to a minute; five is a hang.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// The idle line comes 3 s after the ready line.
/// netd's line when its first DHCP lease is on the link.
const LEASE_LINE: &str = "netd: dhcp eth0: lease ";
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The baseline gives udevd's workers up to 60 s to exit before its settled line.
const SETTLED_TIMEOUT: Duration = Duration::from_secs(120);
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(120);
/// The virtual disk is larger than the image: Carapace grows /data into the rest (as `carapace run`).
const DISK_GIB: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Carapace,
    Baseline,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Carapace => "carapace",
            System::Baseline => "baseline",
        }
    }

    /// docs/boot-contract.md for Carapace; debian_root.rs's bench-ready script for the baseline.
    fn ready_line(self) -> &'static str {
        match self {
            System::Carapace => "carapace: ready slot=",
            System::Baseline => "baseline: ready uptime_ms=",
        }
    }

    fn idle_line(self) -> &'static str {
        match self {
            System::Carapace => "carapace: idle rss ",
            System::Baseline => "baseline: idle rss ",
        }
    }

    /// Only the baseline has processes that linger after boot (udevd's workers): it reports
    /// its memory again once they have exited.
    fn settled_line(self) -> Option<&'static str> {
        match self {
            System::Carapace => None,
            System::Baseline => Some("baseline: settled rss "),
        }
    }

    /// Carapace's PID 1 writes its lines to the console itself, so they are matched from
    /// their start; the baseline's come through the kernel log, a timestamp before them.
    fn wait(
        self,
        vm: &mut Vm,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> carapace_image::Result<(usize, String)> {
        match self {
            System::Carapace => vm.wait_for(needle, from, timeout),
            System::Baseline => vm.wait_for_containing(needle, from, timeout),
        }
    }

    /// Milliseconds of CLOCK_BOOTTIME at ready: from the kernel's start.
    fn kernel_to_ready_ms(self, ready: &str) -> Option<u64> {
        match self {
            System::Carapace => field(ready, "boot_ms"),
            System::Baseline => field(ready, "uptime_ms"),
        }
    }

    /// (PID 1, all processes) in KiB. Carapace's PID 1 sums itself and its services.
    fn idle_rss_kib(self, idle: &str) -> Option<(u64, u64)> {
        let pid1 = field(idle, "pid1_kib")?;
        match self {
            System::Carapace => Some((pid1, field(idle, "all_kib")?)),
            System::Baseline => Some((pid1, field(idle, "total_kib")?)),
        }
    }
}

/// The number after `key=` in a console line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

#[derive(Debug, Clone, Copy)]
pub struct BootSample {
    pub qemu_to_ready_s: f64,
    /// Carapace: QEMU start until netd printed its DHCP lease.
    pub qemu_to_lease_s: Option<f64>,
    /// Carapace: netd's resident memory in the idle line.
    pub netd_rss_kib: Option<u64>,
    pub kernel_to_ready_s: f64,
    pub pid1_rss_kib: u64,
    /// 3 s after ready.
    pub total_rss_kib: u64,
    /// Once nothing from the boot lingers: the 3-s figure for Carapace, whose services are
    /// all long-lived (the logger and agentd).
    pub settled_total_rss_kib: u64,
    pub settled_after_s: f64,
}

/// A `board` machine for `image` with state in `dir`: a new overlay and new firmware
/// variables, as a box fresh from the factory (`carapace run --fresh` does the same).
pub fn fresh_machine(board: &Board, image: &Path, dir: &Path, accel: Accel) -> Result<VmConfig> {
    std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
    let overlay = dir.join("disk.qcow2");
    create_overlay(image, &overlay, DISK_GIB)
        .context(|| format!("make a qcow2 overlay on {}", image.display()))?;
    let mut config = VmConfig::new(board, overlay, dir);
    let _ = std::fs::remove_file(&config.vars);
    config.accel = accel;
    config.echo = std::env::var_os("CARAPACE_BENCH_ECHO").is_some();
    Ok(config)
}

/// Boots once, waits for the ready and idle lines, presses the power button and waits for
/// QEMU to exit (so the next boot of the same overlay finds clean file systems).
pub fn boot(config: &VmConfig, system: System) -> Result<BootSample> {
    let mut vm =
        Vm::start(config).context(|| format!("start QEMU for the {} image", system.name()))?;
    let waited = system.wait(&mut vm, system.ready_line(), 0, READY_TIMEOUT);
    // The wait polls every 100 ms: the figure is late by 50 ms on average, on both systems.
    let qemu_to_ready = vm.started.elapsed();
    let (at, ready) = waited.map_err(|e| console_error(&vm, system, &e.to_string()))?;
    // Carapace's network: netd says ready before its lease (the box works offline), so the
    // time to an address is its own figure, taken when the line arrived: it may come before
    // or after the ready line. The baseline image configures no network.
    let qemu_to_lease = match system {
        System::Carapace => {
            let (index, _) = vm
                .wait_for(LEASE_LINE, 0, READY_TIMEOUT)
                .map_err(|e| console_error(&vm, system, &e.to_string()))?;
            vm.arrived_after(index).map(|after| after.as_secs_f64())
        }
        System::Baseline => None,
    };
    let (at, idle) = system
        .wait(&mut vm, system.idle_line(), at, IDLE_TIMEOUT)
        .map_err(|e| console_error(&vm, system, &e.to_string()))?;
    let settled = match system.settled_line() {
        Some(needle) => Some(
            system
                .wait(&mut vm, needle, at, SETTLED_TIMEOUT)
                .map_err(|e| console_error(&vm, system, &e.to_string()))?
                .1,
        ),
        None => None,
    };
    power_off(&mut vm, system);

    let kernel_ms = system.kernel_to_ready_ms(&ready).ok_or_else(|| {
        fail(format!(
            "{}: no boot time in its ready line '{ready}'",
            system.name()
        ))
    })?;
    let (pid1, total) = system.idle_rss_kib(&idle).ok_or_else(|| {
        fail(format!(
            "{}: no RSS figures in its idle line '{idle}'",
            system.name()
        ))
    })?;
    let (settled_total, settled_after_s) = match &settled {
        None => (total, 3.0),
        Some(line) => match (field(line, "total_kib"), field(line, "after_s")) {
            (Some(t), Some(s)) => (t, s as f64),
            _ => {
                return Err(fail(format!(
                    "{}: no RSS figures in its settled line '{line}'",
                    system.name()
                )));
            }
        },
    };
    Ok(BootSample {
        qemu_to_ready_s: qemu_to_ready.as_secs_f64(),
        qemu_to_lease_s: qemu_to_lease,
        netd_rss_kib: field(&idle, "netd_kib"),
        kernel_to_ready_s: kernel_ms as f64 / 1000.0,
        pid1_rss_kib: pid1,
        total_rss_kib: total,
        settled_total_rss_kib: settled_total,
        settled_after_s,
    })
}

fn power_off(vm: &mut Vm, system: System) {
    let pressed = vm.power_button();
    if pressed.is_ok() && vm.wait_exit(POWER_OFF_TIMEOUT).is_ok() {
        return;
    }
    eprintln!(
        "bench: warning: the {} machine did not power off after the power button ({}); killed it, so \
         its next boot may find unclean file systems",
        system.name(),
        pressed
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| format!("still running after {} s", POWER_OFF_TIMEOUT.as_secs()))
    );
    vm.kill();
}

fn console_error(vm: &Vm, system: System, what: &str) -> super::error::BenchError {
    let console = vm.console();
    let tail = console[console.len().saturating_sub(30)..].join("\n  ");
    fail(format!(
        "booting the {} image: {what}; the console's last lines:\n  {tail}",
        system.name()
    ))
}

/// Self-checks of the console parsing (see stats::CHECKS for why they are not #[test]s).
pub const CHECKS: &[(&str, fn())] = &[
    ("Carapace's ready and idle lines parse", || {
        let s = System::Carapace;
        assert_eq!(
            s.kernel_to_ready_ms("carapace: ready slot=a boot_ms=1834"),
            Some(1834)
        );
        assert_eq!(
            s.idle_rss_kib(
                "carapace: idle rss pid1_kib=900 all_kib=3700 logger_kib=700 agentd_kib=2100"
            ),
            Some((900, 3700))
        );
    }),
    ("the baseline's ready and idle lines parse", || {
        let s = System::Baseline;
        assert_eq!(
            s.kernel_to_ready_ms("baseline: ready uptime_ms=12050"),
            Some(12050)
        );
        assert_eq!(
            s.idle_rss_kib("[   19.239106] baseline: idle rss pid1_kib=11000 total_kib=48000"),
            Some((11000, 48000))
        );
    }),
    ("a key must be a whole word and its value a number", || {
        assert_eq!(field("carapace: ready slot=a boot_ms=", "boot_ms"), None);
        assert_eq!(field("xboot_ms=5 boot_ms=7", "boot_ms"), Some(7));
        assert_eq!(
            System::Carapace.idle_rss_kib("carapace: idle rss pid1_kib=900"),
            None
        );
    }),
];
