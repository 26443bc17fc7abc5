//! Stage 2, PID 1 on the verified root for the life of the box: mounts, cgroups, modules,
//! /data (prepared by the disk helper, mounted here), the services, and the orderly shutdown.

use std::convert::Infallible;
use std::path::Path;

use board_support::BootParams;
use rustix::system::RebootCommand;

use crate::error::{Context, Error, Result};
use crate::service_table::{self, SERVICES_TOML};
use crate::signals::Signals;
use crate::supervisor::Supervisor;
use crate::{
    cgroup, console, data_mount, degraded, disk_helper, hostname, loopback, modules, mounts,
    power_button, root_check, shutdown, stage1, stage1_log, stdio, watchdog,
};

pub fn run() -> Result<Infallible> {
    // Already there when stage 1 ran; not when the root was booted without the initramfs.
    mounts::mount_kernel_filesystems()?;
    stdio::ensure_standard_fds();
    console::add_early_lines(stage1_log::take_over());
    mounts::mount_runtime_filesystems()?;
    stage1::allow_kmsg_lines();
    root_check::require_verified_root()?;

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
    let release = stage1::kernel_release();
    modules::load_all(&Path::new("/lib/modules").join(&release))?;
    hostname::apply();
    if let Err(err) = loopback::bring_up("lo") {
        log_error!("{err}");
    }

    // Opened before the disk helper, which may take minutes, so it is petted meanwhile.
    let watchdog = watchdog::open_if_present().unwrap_or_else(|err| {
        log_error!("{err}; running without a hardware watchdog");
        None
    });
    let data = data_mount::mount(disk_helper::run(&params, watchdog.as_ref()));
    let services = match &data {
        Ok(()) => {
            if let Err(err) =
                console::start_file_log(&Path::new(data_mount::MOUNT_POINT).join("log"))
            {
                log_error!("console.log: {err}");
            }
            services
        }
        Err(degraded) => degraded::hold_data_services(services, degraded),
    };
    let power_buttons = power_button::open_all();

    let mut supervisor = Supervisor::new(
        services,
        signals,
        power_buttons,
        watchdog,
        params.slot,
        params.esp_partuuid,
    );
    if data.is_err() {
        supervisor = supervisor.without_ready_line();
    }
    let finished = supervisor.run();
    shutdown::finish(finished.action, finished.watchdog.as_ref())?;
    Err(Error::Invalid("the kernel returned from reboot".to_owned()))
}
