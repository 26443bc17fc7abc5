//! Kernel modules from a depmod `modules.dep`: every module in it, dependencies first, each
//! once. Debian builds virtio-blk, erofs, dm-verity, ext4, vfat, evdev and the watchdog as
//! modules, so nothing past the initramfs works until this has run.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Context, Result};

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses `.ko.xz`/`.ko.zst` itself. The
/// contract ships uncompressed modules; this only keeps a differently built image bootable.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

pub struct LoadReport {
    pub loaded: usize,
    pub failed: usize,
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
    let wanted = wanted(&text, needle);
    let mut report = LoadReport {
        loaded: 0,
        failed: 0,
        elapsed: Duration::ZERO,
    };
    for module in load_order(&text) {
        if !wanted.contains(module.as_str()) {
            continue;
        }
        match load_one(&modules_dir.join(&module)) {
            Ok(()) => report.loaded += 1,
            Err(err) => {
                report.failed += 1;
                log_error!("module {module} failed to load: {err}");
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The modules of a modules.dep whose path contains `needle`, and what they need (depmod
/// lists every module's dependencies in full on its line).
fn wanted<'a>(modules_dep: &'a str, needle: &str) -> HashSet<&'a str> {
    modules_dep
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(module, _)| module.trim().contains(needle))
        .flat_map(|(module, needs)| std::iter::once(module.trim()).chain(needs.split_whitespace()))
        .collect()
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

/// The module paths of a modules.dep in an order where every module comes after all of its
/// dependencies. depmod lists each module's complete (transitive) dependency set, but the
/// order inside a line is not something to rely on, so this walks the graph instead.
pub fn load_order(modules_dep: &str) -> Vec<String> {
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut listed: Vec<&str> = Vec::new();
    for line in modules_dep.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((module, needs)) = line.split_once(':') else {
            continue;
        };
        let module = module.trim();
        if module.is_empty() {
            continue;
        }
        if !deps.contains_key(module) {
            listed.push(module);
        }
        deps.insert(module, needs.split_whitespace().collect());
    }

    let mut order = Vec::new();
    let mut done = HashSet::new();
    let mut in_progress = HashSet::new();
    for module in listed {
        visit(module, &deps, &mut done, &mut in_progress, &mut order);
    }
    order
}

fn visit<'a>(
    module: &'a str,
    deps: &HashMap<&'a str, Vec<&'a str>>,
    done: &mut HashSet<&'a str>,
    in_progress: &mut HashSet<&'a str>,
    order: &mut Vec<String>,
) {
    // `in_progress` breaks dependency cycles, which depmod refuses to write but a hand-made
    // file could contain.
    if done.contains(module) || !in_progress.insert(module) {
        return;
    }
    for dep in deps.get(module).map(Vec::as_slice).unwrap_or_default() {
        visit(dep, deps, done, in_progress, order);
    }
    in_progress.remove(module);
    done.insert(module);
    order.push(module.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(order: &[String], module: &str) -> usize {
        order.iter().position(|m| m == module).expect(module)
    }

    #[test]
    fn dependencies_come_first_and_each_module_once() {
        let dep = "\
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-bufio.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
";
        let order = load_order(dep);
        assert_eq!(order.len(), 6);
        let verity = position(&order, "kernel/drivers/md/dm-verity.ko");
        assert!(position(&order, "kernel/drivers/md/dm-bufio.ko") < verity);
        assert!(position(&order, "kernel/drivers/md/dm-mod.ko") < verity);
        assert!(position(&order, "kernel/lib/reed_solomon.ko") < verity);
        assert!(
            position(&order, "kernel/lib/libcrc32c.ko")
                < position(&order, "kernel/fs/erofs/erofs.ko")
        );
    }

    #[test]
    fn the_order_inside_a_line_does_not_matter() {
        // ext4 needs jbd2 and mbcache; jbd2 itself needs crc16 (listed before it here).
        let dep = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
";
        let order = load_order(dep);
        assert_eq!(order.len(), 4);
        assert!(
            position(&order, "kernel/lib/crc16.ko") < position(&order, "kernel/fs/jbd2/jbd2.ko")
        );
        assert_eq!(
            order.last().map(String::as_str),
            Some("kernel/fs/ext4/ext4.ko")
        );
    }

    #[test]
    fn cycles_blank_lines_and_junk_do_not_hang_or_duplicate() {
        let dep = "\n# comment\na.ko: b.ko\nb.ko: a.ko\nno colon here\n: orphan.ko\n";
        let order = load_order(dep);
        assert_eq!(order, vec!["b.ko".to_owned(), "a.ko".to_owned()]);
    }

    #[test]
    fn a_match_brings_its_dependencies_and_nothing_else() {
        let dep = "kernel/drivers/watchdog/i6300esb.ko: kernel/x/core.ko\nkernel/x/core.ko:\nkernel/fs/vfat.ko:\n";
        let wanted = wanted(dep, "/drivers/watchdog/");
        let mut wanted: Vec<&str> = wanted.into_iter().collect();
        wanted.sort();
        assert_eq!(
            wanted,
            ["kernel/drivers/watchdog/i6300esb.ko", "kernel/x/core.ko"]
        );
        assert_eq!(super::wanted(dep, "").len(), 3);
    }

    #[test]
    fn a_module_listed_twice_keeps_its_first_place() {
        let order = load_order("x.ko:\ny.ko:\nx.ko:\n");
        assert_eq!(order, vec!["x.ko".to_owned(), "y.ko".to_owned()]);
    }
}
