//! `hardening`: prints the sysctls PID 1 sets, the options of /run, /tmp and /proc, and how
//! many processes of other users this unprivileged service can see in /proc (hidepid).

use std::os::unix::fs::MetadataExt;

use crate::mountinfo::parse_line;

const SYSCTLS: [&str; 5] = [
    "user/max_user_namespaces",
    "kernel/unprivileged_bpf_disabled",
    "kernel/kptr_restrict",
    "kernel/dmesg_restrict",
    "kernel/sysrq",
];

pub fn run() {
    let values: Vec<String> = SYSCTLS
        .iter()
        .map(|key| {
            let value = std::fs::read_to_string(format!("/proc/sys/{key}"))
                .map_or_else(|_| "unreadable".to_owned(), |v| v.trim().to_owned());
            format!("{}={value}", key.replace('/', "."))
        })
        .collect();
    println!("hardening sysctl {}", values.join(" "));

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for target in ["/run", "/tmp", "/proc"] {
        match mountinfo
            .lines()
            .filter_map(parse_line)
            .rfind(|m| m.mount_point == target)
        {
            Some(m) => println!(
                "hardening mount={target} options={} super={}",
                m.options, m.super_options
            ),
            None => println!("hardening mount={target} missing"),
        }
    }

    let me = own_uid();
    let others = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| e.metadata().is_ok_and(|m| m.uid() != me))
                .count()
        })
        .unwrap_or(usize::MAX);
    println!("hardening proc_other_uids={others}");
}

/// This process's uid, from the owner of its own /proc entry.
fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}
