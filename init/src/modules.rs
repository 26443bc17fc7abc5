//! Kernel modules from a depmod `modules.dep`: every module in it, dependencies first, each
//! once. Debian builds virtio-blk, erofs, dm-verity, ext4, vfat, evdev and the watchdog as
//! modules, so nothing past the initramfs works until this has run.
//!
//! Modules load side by side, one thread per CPU (up to four): a module starts once all it
//! needs has loaded. finit_module does its work (reading, the signature check, relocation, the
//! module's init) on the calling CPU, and modules were a quarter of a boot loaded one by one.

use std::ffi::CStr;
use std::path::Path;
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
    let load = |module: &str| load_one(&modules_dir.join(module));
    let (loaded, failed) = modules_dep::load_side_by_side(&order, needs, load);
    // What needed a module that failed fails later with a clearer error (a mount, a device).
    for (module, err) in failed {
        log_error!("module {module} failed to load: {err}");
    }
    Ok(LoadReport {
        loaded,
        elapsed: started.elapsed(),
    })
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
