//! Stage 2, PID 1 on the verified root for the life of the box: mounts, cgroups, modules,
//! sysctls, the hardware watchdog, /data (prepared by the disk helper, mounted here), the
//! services, and the orderly shutdown.

use std::convert::Infallible;
use std::path::Path;

use board_support::BootParams;
use rustix::system::RebootCommand;

use crate::error::{Context, Error, Result};
use crate::service_table::{self, SERVICES_TOML};
use crate::signals::Signals;
use crate::supervisor::Supervisor;
use crate::{
    cgroup, data_mount, degraded, disk_helper, firewall, hostname, loopback, modules, mounts,
    power_button, root_check, shutdown, stage1, stdio, sysctl, unready_boots, watchdog,
};

/// Where modules.dep lists the hardware watchdog drivers (i6300esb and the boards' own).
const WATCHDOG_MODULES: &str = "/drivers/watchdog/";

pub fn run() -> Result<Infallible> {
    // Already there when stage 1 ran; not when the root was booted without the initramfs.
    mounts::mount_kernel_filesystems()?;
    stdio::ensure_standard_fds();
    mounts::mount_runtime_filesystems()?;
    stage1::allow_kmsg_lines();
    root_check::require_verified_root()?;
    sysctl::apply();

    let cmdline =
        std::fs::read_to_string("/proc/cmdline").context(|| "read /proc/cmdline".to_owned())?;
    let params = BootParams::parse(&cmdline)?;
    log_info!("stage2 start slot={}", params.slot);

    // Before any child exists, so no SIGCHLD is lost.
    let signals = Signals::block_and_open()?;
    // Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot.
    rustix::system::reboot(RebootCommand::CadOff)
        .context(|| "disable Ctrl-Alt-Del reboot".to_owned())?;
    // Read before anything is written to disk: a broken table fails the boot early.
    let services = service_table::load(Path::new(SERVICES_TOML))?;

    cgroup::setup()?;
    let modules_dir = Path::new("/lib/modules").join(stage1::kernel_release());
    // The hardware watchdog first, so a hang in the slow work below resets the box.
    if let Err(err) = modules::load_matching(&modules_dir, WATCHDOG_MODULES) {
        log_error!("{err}");
    }
    let setup_petter = watchdog::open_if_present()
        .unwrap_or_else(|err| {
            log_error!("{err}; running without a hardware watchdog");
            None
        })
        .map(watchdog::Watchdog::pet_during_setup);
    let report = modules::load_all(&modules_dir)?;
    log_info!(
        "stage2 modules loaded={} ms={}",
        report.loaded,
        report.elapsed.as_millis()
    );
    hostname::apply();
    // Before any link is up, loopback included.
    let firewall = firewall::load_base_policy();
    match &firewall {
        Ok(true) => log_info!("firewall base policy loaded"),
        Ok(false) => {}
        Err(err) => log_error!("firewall base policy not loaded: {err}"),
    }
    if let Err(err) = loopback::bring_up("lo") {
        log_error!("{err}");
    }

    // The setup thread pets the watchdog while the disk helper runs (up to its deadline).
    let data = data_mount::mount(disk_helper::run(&params));
    let unready = data
        .as_ref()
        .ok()
        .and_then(|()| unready_boots::count_this_boot(params.slot));
    let services = match (&data, unready) {
        (Err(degraded), _) => degraded::hold_data_services(services, degraded),
        (Ok(()), Some(boots)) => degraded::hold_state_services(
            services,
            &format!("unready_boots={boots}"),
            "the boots before this one never became ready (a service crash-looped or missed \
             its watchdog); restart to try again",
        ),
        (Ok(()), None) => {
            disk_helper::move_owner_settings(&params, &services);
            services
        }
    };
    let services = match &firewall {
        Err(err) => degraded::hold_network_services(services, err),
        Ok(_) => services,
    };
    disk_helper::prepare_boot_control(&params, &services);
    let watchdog = setup_petter.map(watchdog::SetupPetter::finish);
    let power_buttons = power_button::open_all();

    let mut supervisor = Supervisor::new(services, signals, power_buttons, watchdog, params.slot);
    if data.is_err() || unready.is_some() || firewall.is_err() {
        supervisor = supervisor.without_ready_line();
    }
    let finished = supervisor.run();
    shutdown::finish(finished.action, finished.watchdog)?;
    Err(Error::Invalid("the kernel returned from reboot".to_owned()))
}
