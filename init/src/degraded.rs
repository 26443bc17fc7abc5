//! A /data beyond repair, or boots that keep failing before ready (unready_boots.rs), bring
//! the box up degraded rather than into a reboot loop: the
//! services that keep state on /data (`state_dir = true`) are held, the rest run, the power
//! button still shuts down cleanly, and one console line says what happened and how the
//! owner resets /data. There is no `ready` line, and a trial slot is not committed: the update
//! service, which decides that, keeps its state on /data and is held too.

use crate::data_mount::Degraded;
use crate::service_table::Service;

/// docs/boot-contract.md quotes this; the disk helper looks for the file (init/disk).
const HOW_TO_RESET: &str = "to erase /data and start fresh, put a file named \
     carapace-factory-reset on the boot partition (ESP) and restart";

/// The services that can run without /data; logs the degraded line.
pub fn hold_data_services(services: Vec<Service>, degraded: &Degraded) -> Vec<Service> {
    let what = format!("data={}", degraded.reason);
    hold_state_services(services, &what, &degraded.detail)
}

/// The services that keep no state on /data; logs `degraded <what> held=<names>: <detail>`.
pub fn hold_state_services(services: Vec<Service>, what: &str, detail: &str) -> Vec<Service> {
    let detail = format!("{}; {HOW_TO_RESET}", detail.replace('\n', "; "));
    hold(services, |s| s.entry.state_dir, what, &detail)
}

/// Without the firewall's base policy no service may reach the network: netd (which would
/// bring the links up) and the services that use it are held.
pub fn hold_network_services(services: Vec<Service>, detail: &str) -> Vec<Service> {
    hold(services, |s| s.entry.network.is_some(), "firewall", detail)
}

fn hold(
    services: Vec<Service>,
    held: fn(&Service) -> bool,
    what: &str,
    detail: &str,
) -> Vec<Service> {
    let (held, kept): (Vec<Service>, Vec<Service>) = services.into_iter().partition(held);
    let names: Vec<&str> = held.iter().map(Service::name).collect();
    let names = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    };
    log_error!("degraded {what} held={names}: {detail}");
    kept
}
