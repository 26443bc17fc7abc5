//! cgroup v2: every service lives in /sys/fs/cgroup/services/<name> with its memory.max, so
//! a leaking service is killed by the kernel instead of taking the box down, and everything a
//! service forked can be found and killed with it.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use crate::error::{Context, Result};
use crate::mounts;

const ROOT: &str = "/sys/fs/cgroup";
const SERVICES: &str = "/sys/fs/cgroup/services";

/// Mounts cgroup2 and turns the memory controller on for the services' subtree. A missing
/// controller is logged, not fatal: services then run without their memory limit.
pub fn setup() -> Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mounts::mount_once("cgroup2", ROOT, "cgroup2", flags, None)?;
    if !Path::new(SERVICES).exists() {
        fs::create_dir(SERVICES).context(|| format!("create {SERVICES}"))?;
    }
    for dir in [ROOT, SERVICES] {
        let control = Path::new(dir).join("cgroup.subtree_control");
        if let Err(err) = fs::write(&control, "+memory") {
            log_error!(
                "cannot enable the memory controller in {}: {err}",
                control.display()
            );
        }
    }
    Ok(())
}

pub struct ServiceCgroup {
    dir: PathBuf,
}

impl ServiceCgroup {
    /// Creates (or reuses) the service's cgroup and sets its memory limit.
    pub fn prepare(name: &str, memory_max: Option<u64>) -> Result<ServiceCgroup> {
        let dir = Path::new(SERVICES).join(name);
        if !dir.exists() {
            fs::create_dir(&dir).context(|| format!("create {}", dir.display()))?;
        }
        let limit = memory_max.map_or_else(|| "max".to_owned(), |bytes| bytes.to_string());
        let memory_max = dir.join("memory.max");
        fs::write(&memory_max, &limit)
            .context(|| format!("write {limit} to {}", memory_max.display()))?;
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
