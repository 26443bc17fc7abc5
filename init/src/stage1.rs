//! Stage 1, in the initramfs: load the modules, find root-<slot> by PARTUUID, put dm-verity
//! over it, mount the verified erofs and switch to it. Every failure is fatal: a root that
//! cannot be verified must not boot.

use std::convert::Infallible;
use std::path::Path;

use board_support::BootParams;
use rustix::mount::MountFlags;

use crate::error::{Context, Result};
use crate::{block_devices, console, dm_verity, modules, mounts, stdio, switch_root};

pub const MARKER: &str = "/initramfs-release";
const NEW_ROOT: &str = "/newroot";
const STAGE2: &str = "/sbin/init";

pub fn run() -> Result<Infallible> {
    mounts::mount_kernel_filesystems()?;
    stdio::ensure_standard_fds();
    allow_kmsg_lines();
    let release = kernel_release();
    log_info!("stage1 start kernel={release}");

    let cmdline =
        std::fs::read_to_string("/proc/cmdline").context(|| "read /proc/cmdline".to_owned())?;
    let params = BootParams::parse(&cmdline)?;

    let report = modules::load_all(&Path::new("/lib/modules").join(&release))?;
    log_info!(
        "stage1 modules loaded={} ms={}",
        report.loaded,
        report.elapsed.as_millis()
    );

    let root =
        block_devices::wait_for_partition(&params.root_partuuid, block_devices::WAIT_FOR_DEVICES)?;
    let verified = dm_verity::activate(dm_verity::ROOT_DM_NAME, &root, &params.verity)?;
    let hash_prefix = params
        .verity
        .root_hash
        .get(..16)
        .unwrap_or(&params.verity.root_hash);
    log_info!(
        "stage1 verity root={} hash={hash_prefix}",
        verified.display()
    );

    // A block that fails verification reads as EIO, which ends the boot in the FATAL path.
    dm_verity::verify_every_block(&verified, params.verity.data_blocks)?;
    let device = verified.to_string_lossy().into_owned();
    mounts::mount(&device, NEW_ROOT, "erofs", MountFlags::RDONLY, None)?;
    let stage2 = format!("{NEW_ROOT}{STAGE2}");
    std::fs::metadata(&stage2).context(|| format!("stat {stage2} on the verified root"))?;

    log_info!("stage1 switch_root");
    // exec keeps no memory: what the console has not taken yet goes out now. Stage 1's
    // lines stay in kmsg for the logger.
    console::drain(std::time::Duration::from_secs(2));
    switch_root::switch_root(NEW_ROOT, STAGE2)
}

pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// The kernel rate-limits writes to /dev/kmsg by default; PID 1 is the system's logger.
pub fn allow_kmsg_lines() {
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
}
