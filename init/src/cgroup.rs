//! cgroup v2: every service lives in /sys/fs/cgroup/services/<name> with its memory.max and
//! pids.max, so a leaking or fork-bombing service is stopped by the kernel instead of taking
//! the box down, and everything a service forked can be found and killed with it.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use crate::error::{Context, Result};
use crate::mounts;

const ROOT: &str = "/sys/fs/cgroup";
const SERVICES: &str = "/sys/fs/cgroup/services";

/// The controllers each service's cgroup gets.
const CONTROLLERS: [&str; 2] = ["memory", "pids"];

/// Mounts cgroup2 and turns the controllers on for the services' subtree. A missing
/// controller is said once, not fatal: services then run without that limit.
pub fn setup() -> Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mounts::mount_once("cgroup2", ROOT, "cgroup2", flags, None)?;
    if !Path::new(SERVICES).exists() {
        fs::create_dir(SERVICES).context(|| format!("create {SERVICES}"))?;
    }
    for controller in CONTROLLERS {
        let enabled = [ROOT, SERVICES].iter().all(|dir| {
            let control = Path::new(dir).join("cgroup.subtree_control");
            fs::write(control, format!("+{controller}")).is_ok()
        });
        if !enabled {
            log_error!(
                "cgroup controller {controller} is missing; services start without their {controller} limits"
            );
        }
    }
    Ok(())
}

pub struct ServiceCgroup {
    dir: PathBuf,
}

impl ServiceCgroup {
    /// Creates (or reuses) the service's cgroup and sets its limits; a limit whose controller
    /// is missing (no such file, said once by [`setup`]) is skipped.
    pub fn prepare(name: &str, memory_max: u64, pids_max: u64) -> Result<ServiceCgroup> {
        let dir = Path::new(SERVICES).join(name);
        if !dir.exists() {
            fs::create_dir(&dir).context(|| format!("create {}", dir.display()))?;
        }
        for (file, limit) in [("memory.max", memory_max), ("pids.max", pids_max)] {
            let path = dir.join(file);
            if path.exists() {
                fs::write(&path, limit.to_string())
                    .context(|| format!("write {limit} to {}", path.display()))?;
            }
        }
        Ok(ServiceCgroup { dir })
    }

    /// `cgroup.procs`, opened before fork so the child joins with a single write.
    pub fn open_procs(&self) -> Result<OwnedFd> {
        let path = self.dir.join("cgroup.procs");
        rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
            .context(|| format!("open {}", path.display()))
    }

    /// SIGKILLs everything left in the cgroup (what the service forked and left behind).
    pub fn kill_all(&self) {
        let _ = fs::write(self.dir.join("cgroup.kill"), "1");
    }

    /// Whether any process is still in the cgroup.
    pub fn is_populated(&self) -> bool {
        fs::read_to_string(self.dir.join("cgroup.events")).is_ok_and(|events| populated(&events))
    }
}

/// In the child between fork and exec: move the calling process into the cgroup.
pub fn join(procs: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    rustix::io::write(procs, b"0")?;
    Ok(())
}

fn populated(events: &str) -> bool {
    events.lines().any(|line| line.trim() == "populated 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_populated_from_cgroup_events() {
        assert!(populated("populated 1\nfrozen 0\n"));
        assert!(!populated("populated 0\nfrozen 0\n"));
        assert!(!populated(""));
    }
}
