//! The mounts PID 1 makes, each with the flags it needs and an error that names it.

use std::ffi::CString;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Context, Error, Result};

/// Mounts `source` of `fstype` on `target`, creating `target` when it is missing.
pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> Result<()> {
    if !Path::new(target).exists() {
        std::fs::create_dir_all(target).context(|| format!("create mount point {target}"))?;
    }
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|_| Error::Invalid(format!("mount options for {target} contain a NUL")))?;
    rustix::mount::mount(source, target, fstype, flags, data.as_deref())
        .context(|| format!("mount {fstype} {source} on {target}"))
}

/// Like [`mount`], but a target that is already a mount point (an earlier stage mounted
/// it) is left as it is: mounting proc or tmpfs again would stack a second copy.
pub fn mount_once(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> Result<()> {
    if is_mount_point(target) {
        return Ok(());
    }
    mount(source, target, fstype, flags, data)
}

/// The kernel's own file systems for stage 1. devtmpfs is not mounted automatically in an
/// initramfs (CONFIG_DEVTMPFS_MOUNT only acts on a disk root).
pub fn mount_kernel_filesystems() -> Result<()> {
    let hardened = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    mount_once(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some("mode=0755"),
    )?;
    // Services see only their own processes; PID 1 (root) still sees every one.
    mount_once("proc", "/proc", "proc", hardened, Some("hidepid=invisible"))?;
    mount_once("sysfs", "/sys", "sysfs", hardened, None)
}

/// /run and /tmp for stage 2 (the root itself is read-only erofs): nothing in them runs,
/// and a service filling them cannot take more than this of the box's memory.
pub fn mount_runtime_filesystems() -> Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_once("tmpfs", "/run", "tmpfs", flags, Some("mode=0755,size=16m"))?;
    mount_once("tmpfs", "/tmp", "tmpfs", flags, Some("mode=1777,size=64m"))
}

pub fn move_mount(from: &str, to: &str) -> Result<()> {
    rustix::mount::mount_move(from, to).context(|| format!("move mount {from} to {to}"))
}

pub fn unmount(target: &str) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::empty()).context(|| format!("unmount {target}"))
}

/// Whether `path` is a mount point: its device differs from its parent's.
pub fn is_mount_point(path: &str) -> bool {
    let Ok(here) = rustix::fs::stat(path) else {
        return false;
    };
    let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
    let Ok(above) = rustix::fs::stat(parent) else {
        return false;
    };
    here.st_dev != above.st_dev || here.st_ino == above.st_ino
}
