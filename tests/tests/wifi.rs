//! Wi-Fi in QEMU: the test image has two simulated radios (mac80211_hwsim), a WPA2-PSK access
//! point on the second (hostapd, a test-only service) and the access point's SSID and
//! passphrase in netd's configuration. netd must join it through iwd over D-Bus, report the
//! station's state and signal on its status socket, join again after the access point
//! restarts, and never show the passphrase. Wi-Fi trials on netd's control socket (the way
//! agentd changes networks): a trial nobody commits goes back by itself, a committed one stays.

mod common;

use std::time::Duration;

use common::{boot_to_ready, fail, line_with, machine, power_off, value};

const SSID: &str = "carapace-test-ap";
/// The test recipe's passphrase for the access point.
const PASSPHRASE: &str = "test-passphrase-1234";
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn netd_joins_the_configured_network_through_iwd() {
    let (_dir, mut config) = machine("wifi");
    config
        .fw_cfg
        .push(("carapace.test".into(), "wificheck".into()));
    let mut vm = boot_to_ready(&config);

    line_with(&mut vm, "netd: wifi: agent registered with iwd");
    let connected = match vm.wait_for(
        &format!("netd: wifi wlan0: connected ssid={SSID} signal="),
        0,
        JOIN_TIMEOUT,
    ) {
        Ok((_, line)) => line,
        Err(e) => fail(&vm, e),
    };
    let signal: i16 = value(&connected, "signal")
        .parse()
        .unwrap_or_else(|_| fail(&vm, format!("no signal in dBm in '{connected}'")));
    assert!((-100..0).contains(&signal), "{connected}");

    // The status socket, read on the box by the test service as another uid.
    let status = line_with(&mut vm, "wificheck: wificheck status ");
    assert_eq!(
        status,
        format!(
            "wificheck: wificheck status wlan0 state=connected ssid={SSID} signal_dbm={signal} \
             networks={SSID} passphrase_shown=no"
        )
    );

    // The access point goes away and comes back (PID 1 restarts it): netd joins again.
    line_with(&mut vm, "wificheck: wificheck killed hostapd pid=");
    let after = match vm.wait_for(
        &format!("netd: wifi wlan0: disconnected ssid={SSID}"),
        0,
        JOIN_TIMEOUT,
    ) {
        Ok((index, _)) => index,
        Err(e) => fail(&vm, e),
    };
    match vm.wait_for(
        &format!("netd: wifi wlan0: connected ssid={SSID} signal="),
        after,
        JOIN_TIMEOUT,
    ) {
        Ok(_) => {}
        Err(e) => fail(&vm, e),
    }

    let console = vm.console();
    let leaked: Vec<&String> = console
        .iter()
        .filter(|l| l.contains(PASSPHRASE) && !l.starts_with("wificheck:"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the passphrase is on the console: {leaked:?}"
    );
    power_off(&mut vm);
}

#[test]
fn an_uncommitted_wifi_trial_goes_back_by_itself_and_a_committed_one_stays() {
    let (_dir, mut config) = machine("wifitrial");
    config
        .fw_cfg
        .push(("carapace.test".into(), "wifitrial".into()));
    let mut vm = boot_to_ready(&config);

    line_with(
        &mut vm,
        "netd: control: socket=/run/netd/control.sock controllers=1000",
    );
    // The first join comes after iwd's scans, which a loaded machine (TCG) stretches.
    if let Err(e) = vm.wait_for(
        &format!("wifitrial: wifitrial connected ssid={SSID}"),
        0,
        2 * JOIN_TIMEOUT,
    ) {
        fail(&vm, e);
    }

    // A network that is not in the air, never committed: netd forgets the access point,
    // leaves it, and goes back to it by itself after the trial's 20 s.
    assert_eq!(
        wait(&mut vm, "wifitrial: wifitrial trial elsewhere reply="),
        "wifitrial: wifitrial trial elsewhere reply={\"ok\":true}"
    );
    line_with(
        &mut vm,
        "netd: control: uid=1000 wifi_trial networks=carapace-elsewhere revert_after_s=20: ok",
    );
    wait(
        &mut vm,
        &format!("netd: wifi: forgot ssid={SSID} (not configured)"),
    );
    wait(&mut vm, &format!("wifitrial: wifitrial left ssid={SSID}"));
    wait(
        &mut vm,
        "netd: wifi trial: reverted networks=carapace-elsewhere (no commit within 20 s",
    );
    wait(
        &mut vm,
        &format!("wifitrial: wifitrial back ssid={SSID} outcome=reverted"),
    );

    // The access point on trial, committed: it stays, and a second commit finds nothing.
    assert_eq!(
        wait(&mut vm, "wifitrial: wifitrial commit reply="),
        "wifitrial: wifitrial commit reply={\"ok\":true}"
    );
    let second = wait(&mut vm, "wifitrial: wifitrial second commit reply=");
    assert!(
        second.contains("\"ok\":false") && second.contains("no Wi-Fi trial is pending"),
        "{second}"
    );
    line_with(
        &mut vm,
        &format!("netd: wifi trial: committed networks={SSID}"),
    );
    assert_eq!(
        wait(&mut vm, "wifitrial: wifitrial status "),
        format!(
            "wifitrial: wifitrial status last_trial=committed networks={SSID} \
             passphrase_shown=no"
        )
    );

    let console = vm.console();
    let leaked: Vec<&String> = console
        .iter()
        .filter(|l| l.contains(PASSPHRASE) || l.contains("elsewhere-passphrase"))
        .collect();
    assert!(
        leaked.is_empty(),
        "a passphrase is on the console: {leaked:?}"
    );
    power_off(&mut vm);
}

/// The first console line that starts with `needle`, waiting as long as a join may take.
fn wait(vm: &mut carapace_image::qemu::Vm, needle: &str) -> String {
    match vm.wait_for(needle, 0, JOIN_TIMEOUT) {
        Ok((_, line)) => line,
        Err(e) => fail(vm, e),
    }
}
