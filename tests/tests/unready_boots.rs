//! A fault that survives resets ends in a degraded boot, not a reset loop: agentd's identity
//! file garbled on /data makes agentd crash-loop on every boot, PID 1 calls the box unhealthy
//! and the hardware watchdog resets it; after three boots that never became ready the next
//! one holds the services that keep state on /data and stays up. Slow (four boots, three of
//! them waiting out a crash loop and the watchdog): run by `make test-all`.

mod common;

use std::time::Duration;

use carapace_image::qemu::Vm;
use common::*;

const CRASH_LOOP_BOOT: Duration = Duration::from_secs(360);

#[test]
fn boots_that_never_become_ready_end_degraded_not_in_a_reset_loop() {
    let (_dir, mut config) = machine("unready");
    config
        .fw_cfg
        .push(("carapace.test".into(), "corrupt-identity".into()));
    let mut vm = boot_to_ready(&config);
    line_with(&mut vm, "corrupt-identity: corrupt-identity done");
    power_off(&mut vm);
    drop(vm);

    let mut vm = Vm::start(&config).expect("start QEMU");
    let (mut from, _) = match vm.wait_for("carapace: stage1 start", 0, BOOT_TIMEOUT) {
        Ok(hit) => hit,
        Err(e) => fail(&vm, e),
    };
    // Boots 1 to 3 fail: agentd fails on its identity, crash-loops, the watchdog resets.
    for failed in 1..=3 {
        match vm.wait_for("carapace: stage1 start", from + 1, CRASH_LOOP_BOOT) {
            Ok((at, _)) => from = at,
            Err(e) => fail(&vm, format!("boot {failed} was not reset: {e}")),
        }
    }
    let degraded = match vm.wait_for("carapace: degraded unready_boots=", from, BOOT_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(&vm, e),
    };
    assert_eq!(value(&degraded, "unready_boots"), "3", "{degraded}");
    assert!(
        degraded.contains("held=logger,iwd,netd,agentd,marker"),
        "{degraded}"
    );
    assert!(
        vm.events().iter().any(|e| e == "WATCHDOG"),
        "the failing boots were not ended by the hardware watchdog: {:?}",
        vm.events()
    );
    // The degraded boot stays up: no further reset for a minute, and no ready line.
    let starts = |vm: &Vm| {
        vm.console()
            .iter()
            .filter(|l| l.starts_with("carapace: stage1 start"))
            .count()
    };
    let before = starts(&vm);
    std::thread::sleep(Duration::from_secs(60));
    assert_eq!(starts(&vm), before, "the degraded box was reset");
    let console = vm.console();
    let agentd_failed = console
        .iter()
        .any(|l| l.starts_with("agentd: fatal:") && l.contains("identity"));
    assert!(
        agentd_failed,
        "agentd did not fail on its identity\n{}",
        console.join("\n")
    );
    power_off(&mut vm);
}
