//! The kernel settings an appliance wants, written by PID 1 at the start of stage 2 before
//! any service runs: no user namespaces or unprivileged BPF (the usual ways in for a kernel
//! exploit), no kernel pointers or kernel log for services, no magic SysRq on the console.
//! A setting the kernel lacks is one error line, not a reason to stop booting.

/// (/proc/sys path, value); docs/boot-contract.md lists them.
const SETTINGS: [(&str, &str); 5] = [
    ("user/max_user_namespaces", "0"),
    ("kernel/unprivileged_bpf_disabled", "1"),
    ("kernel/kptr_restrict", "2"),
    ("kernel/dmesg_restrict", "1"),
    ("kernel/sysrq", "0"),
];

pub fn apply() {
    for (key, value) in SETTINGS {
        let path = format!("/proc/sys/{key}");
        if let Err(err) = std::fs::write(&path, value) {
            log_error!("sysctl {} = {value}: {err}", key.replace('/', "."));
        }
    }
}
