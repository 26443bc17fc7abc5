//! What the kernel says about a process: its CPU time (/proc/<pid>/stat, and the
//! nanosecond run times of its threads in /proc/<pid>/task/*/schedstat) and its memory
//! (/proc/<pid>/smaps_rollup: RSS, and PSS, which shares each shared page among its users).

use crate::error::{Context, Result, fail};

/// The unit of the CPU times in /proc/<pid>/stat (USER_HZ): 100 on every Linux architecture
/// this bench runs on, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// Memory in KiB, as smaps_rollup counts it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// User + system CPU time of the process so far, in ms. /proc/<pid>/stat counts it in
/// 10 ms ticks, too coarse for a start that costs a few ms, so this is the sum of its live
/// threads' run times (ns), or the ticks when they say more (threads that already exited
/// count only there).
pub fn cpu_ms(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).context(|| format!("read {path}"))?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| fail(format!("{path}: unexpected format")))?;
    let coarse = ticks as f64 * 1000.0 / USER_HZ;
    Ok(threads_run_ns(pid).map_or(coarse, |ns| coarse.max(ns as f64 / 1e6)))
}

/// The sum of the first field (time on a CPU, ns) of every thread's schedstat.
fn threads_run_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let rollup = std::fs::read_to_string(&path).context(|| format!("read {path}"))?;
    parse_rollup(&rollup).ok_or_else(|| fail(format!("{path}: no Rss or Pss line")))
}

/// utime + stime + cutime + cstime (fields 14 to 17: with the children it waited for). The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are counted from the
/// last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(field(14)? + field(15)? + field(16)? + field(17)?)
}

fn parse_rollup(rollup: &str) -> Option<Memory> {
    let kib = |name: &str| {
        rollup.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_kib: kib("Rss")?,
        pss_kib: kib("Pss")?,
    })
}

pub const CHECKS: &[(&str, fn())] = &[
    (
        "CPU ticks are counted from the last parenthesis of the name",
        || {
            let stat = "4242 (tokio (main) x) S 1 4242 4242 0 -1 4194560 1059 0 0 0 7 3 2 1 20 0 4 0 123 0";
            assert_eq!(cpu_ticks(stat), Some(13));
            assert_eq!(cpu_ticks("4242 (short"), None);
        },
    ),
    ("smaps_rollup gives RSS and PSS in KiB", || {
        let rollup = "00400000-7ffd [rollup]\nRss:                4520 kB\nPss:                2210 kB\nPss_Anon:           1200 kB\n";
        assert_eq!(
            parse_rollup(rollup),
            Some(Memory {
                rss_kib: 4520,
                pss_kib: 2210
            })
        );
    }),
    ("this process has a CPU time and a memory", || {
        assert!(cpu_ms(std::process::id()).is_ok());
        assert!(threads_run_ns(std::process::id()).expect("schedstat") > 0);
        assert!(memory(std::process::id()).expect("memory").rss_kib > 0);
    }),
];
