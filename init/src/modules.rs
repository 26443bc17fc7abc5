//! Kernel modules from a depmod `modules.dep`: every module in it, dependencies first, each
//! once. Debian builds virtio-blk, erofs, dm-verity, ext4, vfat, evdev and the watchdog as
//! modules, so nothing past the initramfs works until this has run.
//!
//! Modules load side by side, one thread per CPU (up to four): a module starts once all it
//! needs has loaded. finit_module does its work (reading, the signature check, relocation, the
//! module's init) on the calling CPU, and modules were a quarter of a boot loaded one by one.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use board_support::modules_dep;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Context, Result};

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses `.ko.xz`/`.ko.zst` itself. The
/// contract ships uncompressed modules; this only keeps a differently built image bootable.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// What loaded; each module that failed has its own error line.
pub struct LoadReport {
    pub loaded: usize,
    pub elapsed: Duration,
}

/// Loads every module listed in `<modules_dir>/modules.dep`. A module that fails is reported
/// and skipped: what needed it fails later with a clearer error (a mount, a missing device).
pub fn load_all(modules_dir: &Path) -> Result<LoadReport> {
    load_matching(modules_dir, "")
}

/// Loads the modules whose path contains `needle` (all for ""), with their dependencies.
pub fn load_matching(modules_dir: &Path, needle: &str) -> Result<LoadReport> {
    let started = Instant::now();
    let dep_path = modules_dir.join("modules.dep");
    let text =
        std::fs::read_to_string(&dep_path).context(|| format!("read {}", dep_path.display()))?;
    let wanted = modules_dep::matching_with_needs(&text, needle);
    let order: Vec<String> = modules_dep::load_order(&text)
        .into_iter()
        .filter(|module| wanted.contains(module.as_str()))
        .collect();
    let (needs, _) = modules_dep::needs(&text);
    let schedule = Schedule::new(order.iter().map(String::as_str).collect(), needs);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS));
    let (loaded, _failed) = load_side_by_side(modules_dir, schedule, workers);
    Ok(LoadReport {
        loaded,
        elapsed: started.elapsed(),
    })
}

/// More threads than this only wait on each other in the kernel.
const MAX_WORKERS: usize = 4;

/// Loads the schedule's modules on `workers` threads, this one among them. A thread that
/// cannot be started leaves its share to the others. A module that fails is reported and
/// counts as done: what needed it fails later with a clearer error (a mount, a missing device).
fn load_side_by_side(modules_dir: &Path, schedule: Schedule<'_>, workers: usize) -> (usize, usize) {
    let state = Mutex::new(schedule);
    let turn = Condvar::new();
    let loaded = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let work = || {
        loop {
            let module = {
                let mut schedule = state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(module) = schedule.take() {
                        break module;
                    }
                    if schedule.all_taken() {
                        return;
                    }
                    schedule = turn.wait(schedule).unwrap_or_else(PoisonError::into_inner);
                }
            };
            match load_one(&modules_dir.join(module)) {
                Ok(()) => loaded.fetch_add(1, Ordering::Relaxed),
                Err(err) => {
                    log_error!("module {module} failed to load: {err}");
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .finish(module);
            turn.notify_all();
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            if std::thread::Builder::new()
                .name("modules".into())
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    (loaded.into_inner(), failed.into_inner())
}

/// Which module may start next: each once, after everything it needs (among the modules
/// scheduled) has finished, in load order, so a lone thread loads exactly in that order.
struct Schedule<'a> {
    waiting: Vec<&'a str>,
    scheduled: HashSet<&'a str>,
    needs: HashMap<&'a str, Vec<&'a str>>,
    finished: HashSet<&'a str>,
    running: usize,
}

impl<'a> Schedule<'a> {
    fn new(order: Vec<&'a str>, needs: HashMap<&'a str, Vec<&'a str>>) -> Schedule<'a> {
        Schedule {
            scheduled: order.iter().copied().collect(),
            waiting: order,
            needs,
            finished: HashSet::new(),
            running: 0,
        }
    }

    fn take(&mut self) -> Option<&'a str> {
        let ready = |module: &&str| {
            self.needs.get(module).is_none_or(|needs| {
                needs
                    .iter()
                    .all(|n| self.finished.contains(n) || !self.scheduled.contains(n))
            })
        };
        let next = self.waiting.iter().position(ready).or(
            // Nothing ready and nothing loading: a cycle (depmod writes none, a hand-made file
            // could). Load order broke it; follow that.
            (self.running == 0 && !self.waiting.is_empty()).then_some(0),
        )?;
        self.running += 1;
        Some(self.waiting.remove(next))
    }

    fn finish(&mut self, module: &'a str) {
        self.running -= 1;
        self.finished.insert(module);
    }

    fn all_taken(&self) -> bool {
        self.waiting.is_empty()
    }
}

fn load_one(path: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let compressed = path
        .extension()
        .is_some_and(|ext| ext == "xz" || ext == "zst" || ext == "gz");
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    let no_parameters: &CStr = c"";
    match rustix::system::finit_module(&fd, no_parameters, flags) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule<'a>(order: &[&'a str], needs: &[(&'a str, &[&'a str])]) -> Schedule<'a> {
        let needs = needs.iter().map(|(m, n)| (*m, n.to_vec())).collect();
        Schedule::new(order.to_vec(), needs)
    }

    #[test]
    fn one_thread_loads_in_load_order() {
        let mut s = schedule(
            &["dm-mod", "dm-bufio", "dm-verity", "erofs"],
            &[("dm-verity", &["dm-mod", "dm-bufio"])],
        );
        let mut seen = Vec::new();
        while let Some(m) = s.take() {
            seen.push(m);
            s.finish(m);
        }
        assert_eq!(seen, ["dm-mod", "dm-bufio", "dm-verity", "erofs"]);
        assert!(s.all_taken());
    }

    #[test]
    fn a_module_waits_for_what_it_needs_while_others_start() {
        let mut s = schedule(
            &["mac80211", "mac80211_hwsim", "evdev"],
            &[("mac80211_hwsim", &["mac80211"])],
        );
        assert_eq!(s.take(), Some("mac80211"));
        // hwsim needs mac80211, which is still loading: evdev goes first.
        assert_eq!(s.take(), Some("evdev"));
        assert_eq!(s.take(), None);
        assert!(!s.all_taken());
        s.finish("evdev");
        assert_eq!(s.take(), None);
        s.finish("mac80211");
        assert_eq!(s.take(), Some("mac80211_hwsim"));
        assert!(s.all_taken());
    }

    #[test]
    fn a_need_that_is_not_scheduled_does_not_block() {
        let mut s = schedule(&["vfat"], &[("vfat", &["fat"])]);
        assert_eq!(s.take(), Some("vfat"));
    }

    #[test]
    fn a_cycle_is_broken_in_load_order_once_nothing_is_loading() {
        let mut s = schedule(&["a", "b"], &[("a", &["b"]), ("b", &["a"])]);
        assert_eq!(s.take(), Some("a"));
        assert_eq!(s.take(), None);
        s.finish("a");
        assert_eq!(s.take(), Some("b"));
    }

    #[test]
    fn every_module_is_tried_once_on_several_threads() {
        // No such directory: every load fails, and each module is counted exactly once.
        let order: Vec<String> = (0..40).map(|i| format!("m{i}.ko")).collect();
        let needs: HashMap<&str, Vec<&str>> = (1..40)
            .step_by(3)
            .map(|i| (order[i].as_str(), vec![order[i - 1].as_str()]))
            .collect();
        let s = Schedule::new(order.iter().map(String::as_str).collect(), needs);
        let dir = Path::new("/nonexistent-carapace-modules");
        assert_eq!(load_side_by_side(dir, s, 4), (0, 40));
    }
}
