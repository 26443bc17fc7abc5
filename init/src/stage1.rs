//! Stage 1, in the initramfs: load the modules, find root-<slot> by PARTUUID, put dm-verity
//! over it, mount the verified erofs and switch to it. Every failure is fatal: a root that
//! cannot be verified must not boot.

use std::convert::Infallible;
use std::path::Path;
use std::time::Instant;

use board_support::{BootParams, block_devices};
use rustix::mount::MountFlags;

use crate::dm_verity::OnCorruption;
use crate::error::{Context, Error, Result};
use crate::{console, dm_verity, modules, mounts, stdio, switch_root};

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
        block_devices::wait_for_partition(&params.root_partuuid, block_devices::WAIT_FOR_DEVICES)
            .map_err(Error::Partition)?;
    // Until the whole-root read below is done a bad block reads as EIO, so the FATAL line can
    // name it; then the live table restarts the machine on corruption (dm_verity.rs).
    let verified = dm_verity::activate(
        dm_verity::ROOT_DM_NAME,
        &root,
        &params.verity,
        OnCorruption::Fail,
    )?;
    let hash_prefix = params
        .verity
        .root_hash
        .get(..16)
        .unwrap_or(&params.verity.root_hash);
    log_info!(
        "stage1 verity root={} hash={hash_prefix}",
        verified.display()
    );

    // Reading every block at every boot costs, under TCG on a busy 2-core host, 182-281 ms
    // for the 5 MiB root (about 3.6-5.5 s per 100 MiB; the `stage1 verity checked` line
    // reports it each boot). At today's root size that is under 5 % of the boot, and it is
    // the only check that reaches blocks no boot opens, so it stays. Past ~100 MiB of root,
    // move it after the ready line into a supervised reader that must finish before the
    // slot is committed: with restart_on_corruption live, a bad block still burns the try.
    // A block that fails verification here reads as EIO, which ends the boot in the FATAL
    // path.
    let started = Instant::now();
    dm_verity::verify_every_block(&verified, params.verity.data_blocks)?;
    let verify_ms = started.elapsed().as_millis();
    dm_verity::set_policy(
        dm_verity::ROOT_DM_NAME,
        &root,
        &params.verity,
        OnCorruption::Restart,
    )?;
    log_info!(
        "stage1 verity checked kib={} ms={verify_ms} on_corruption=restart",
        params.verity.data_blocks.saturating_mul(4)
    );
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
