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
