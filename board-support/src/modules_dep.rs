//! The kernel modules' `modules.dep` (depmod's format, paths relative to the modules
//! directory): the builder writes one for the initramfs and one for the root, stage 1 and
//! stage 2 read them. One definition, so what the builder lists is what PID 1 loads.

use std::collections::{HashMap, HashSet};

/// One module and every module it needs, directly or not.
pub struct ModuleEntry<'a> {
    pub rel_path: &'a str,
    pub needs: Vec<&'a str>,
}

/// `modules.dep` text: one `module: needs...` line per module, in the order given.
pub fn render(entries: &[ModuleEntry<'_>]) -> String {
    let mut out = String::new();
    for entry in entries {
        out.push_str(entry.rel_path);
        out.push(':');
        for need in &entry.needs {
            out.push(' ');
            out.push_str(need);
        }
        out.push('\n');
    }
    out
}

/// The modules of a modules.dep whose path contains `needle`, and what they need (depmod
/// lists every module's dependencies in full on its line).
pub fn matching_with_needs<'a>(modules_dep: &'a str, needle: &str) -> HashSet<&'a str> {
    modules_dep
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(module, _)| module.trim().contains(needle))
        .flat_map(|(module, needs)| std::iter::once(module.trim()).chain(needs.split_whitespace()))
        .collect()
}

/// Each module of a modules.dep with what it needs, and the modules in the order listed.
pub fn needs(modules_dep: &str) -> (HashMap<&str, Vec<&str>>, Vec<&str>) {
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
    (deps, listed)
}

/// The module paths of a modules.dep in an order where every module comes after all of its
/// dependencies. depmod lists each module's complete (transitive) dependency set, but the
/// order inside a line is not something to rely on, so this walks the graph instead.
pub fn load_order(modules_dep: &str) -> Vec<String> {
    let (deps, listed) = needs(modules_dep);
    let mut order = Vec::new();
    let mut done = HashSet::new();
    let mut in_progress = HashSet::new();
    for module in listed {
        visit(module, &deps, &mut done, &mut in_progress, &mut order);
    }
    order
}

/// More threads than this only wait on each other in the kernel.
const MAX_LOAD_THREADS: usize = 4;

/// Loads `order` (dependencies first) with `load`, one thread per CPU (up to four), the
/// caller's among them: a module starts once all it needs (among `order`) has finished.
/// finit_module does its work (reading, the signature check, relocation, the module's init)
/// on the calling CPU, so modules load side by side. A module that fails counts as done.
/// Returns how many loaded, and each failure.
pub fn load_side_by_side<'a, E: Send>(
    order: &'a [String],
    needs: HashMap<&'a str, Vec<&'a str>>,
    load: impl Fn(&str) -> Result<(), E> + Sync,
) -> (usize, Vec<(String, E)>) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_LOAD_THREADS));
    load_on(
        workers,
        order.iter().map(String::as_str).collect(),
        needs,
        load,
    )
}

/// [`load_side_by_side`] on `workers` threads. A thread that cannot be started leaves its
/// share to the others.
fn load_on<'a, E: Send>(
    workers: usize,
    order: Vec<&'a str>,
    needs: HashMap<&'a str, Vec<&'a str>>,
    load: impl Fn(&str) -> Result<(), E> + Sync,
) -> (usize, Vec<(String, E)>) {
    use std::sync::{Condvar, Mutex, PoisonError};
    let state = Mutex::new(Schedule::new(order, needs));
    let turn = Condvar::new();
    let outcome = Mutex::new((0, Vec::new()));
    let work = || {
        loop {
            let module = {
                let mut schedule = state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(module) = schedule.take() {
                        break module;
                    }
                    if schedule.waiting.is_empty() {
                        return;
                    }
                    schedule = turn.wait(schedule).unwrap_or_else(PoisonError::into_inner);
                }
            };
            let result = load(module);
            {
                let mut outcome = outcome.lock().unwrap_or_else(PoisonError::into_inner);
                match result {
                    Ok(()) => outcome.0 += 1,
                    Err(err) => outcome.1.push((module.to_owned(), err)),
                }
            }
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
    outcome.into_inner().unwrap_or_else(PoisonError::into_inner)
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
        assert!(s.waiting.is_empty());
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
        assert!(!s.waiting.is_empty());
        s.finish("evdev");
        assert_eq!(s.take(), None);
        s.finish("mac80211");
        assert_eq!(s.take(), Some("mac80211_hwsim"));
        assert!(s.waiting.is_empty());
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
    fn every_module_is_loaded_once_on_several_threads_after_what_it_needs() {
        let order: Vec<String> = (0..40).map(|i| format!("m{i}.ko")).collect();
        let needs: HashMap<&str, Vec<&str>> = (1..40)
            .step_by(3)
            .map(|i| (order[i].as_str(), vec![order[i - 1].as_str()]))
            .collect();
        let done = std::sync::Mutex::new(Vec::new());
        let (loaded, failed) = load_on(
            4,
            order.iter().map(String::as_str).collect(),
            needs.clone(),
            |module| {
                let mut done = done.lock().unwrap();
                for need in needs.get(module).into_iter().flatten() {
                    assert!(done.contains(&need.to_string()), "{module} before {need}");
                }
                done.push(module.to_owned());
                if module == "m7.ko" {
                    Err("no such device")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(loaded, 39);
        assert_eq!(failed, [("m7.ko".to_owned(), "no such device")]);
        let mut done = done.into_inner().unwrap();
        done.sort();
        let mut all = order.clone();
        all.sort();
        assert_eq!(done, all);
    }

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
        let wanted = matching_with_needs(dep, "/drivers/watchdog/");
        let mut wanted: Vec<&str> = wanted.into_iter().collect();
        wanted.sort();
        assert_eq!(
            wanted,
            ["kernel/drivers/watchdog/i6300esb.ko", "kernel/x/core.ko"]
        );
        assert_eq!(super::matching_with_needs(dep, "").len(), 3);
    }

    #[test]
    fn a_module_listed_twice_keeps_its_first_place() {
        let order = load_order("x.ko:\ny.ko:\nx.ko:\n");
        assert_eq!(order, vec!["x.ko".to_owned(), "y.ko".to_owned()]);
    }
}
