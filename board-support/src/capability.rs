//! Linux capability names and their bit numbers, so the builder and PID 1 check a service's
//! `capabilities` against one list (a name the kernel would not know fails the build, not
//! every boot). Numbers from include/uapi/linux/capability.h.

/// `CAP_<NAME>` is bit `index` of the 64-bit capability sets.
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit of `CAP_<NAME>` in the capability sets; `None` for anything else (including a
/// name without the `CAP_` prefix).
pub fn bit(name: &str) -> Option<u64> {
    let short = name.strip_prefix("CAP_")?;
    let index = NAMES.iter().position(|known| *known == short)?;
    Some(1u64 << index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_kernels_bits() {
        assert_eq!(bit("CAP_CHOWN"), Some(1));
        assert_eq!(bit("CAP_DAC_OVERRIDE"), Some(1 << 1));
        assert_eq!(bit("CAP_NET_ADMIN"), Some(1 << 12));
        assert_eq!(bit("CAP_SYSLOG"), Some(1 << 34));
        assert_eq!(bit("CAP_CHECKPOINT_RESTORE"), Some(1 << 40));
        assert_eq!(bit("NET_ADMIN"), None);
        assert_eq!(bit("CAP_FLY"), None);
        assert_eq!(bit("CAP_net_admin"), None);
    }
}
