//! The seccomp filter: system calls a WebAssembly runtime never needs and an escaped attacker
//! would want fail with EPERM. A deny list, not an allow list: wasmtime, its thread pool and
//! tokio's blocking pool use a wide and changing set of calls, and the Landlock layers already
//! take the file system and TCP away; this closes what Landlock does not cover.

use crate::Error;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Refused for the rest of the process's life, all threads included.
const REFUSED: &[libc::c_long] = &[
    // The network, and sockets of any family (agentd is reached over stdin and stdout).
    // socketpair stays: tokio's signal driver makes one, and a pair reaches only itself.
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    // Other programs, and other processes' memory.
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    // Mounts, namespaces and roots.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_fspick,
    libc::SYS_open_by_handle_at,
    // The kernel itself.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_personality,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_fanotify_init,
    libc::SYS_mknodat,
];

pub fn refuse_dangerous() -> Result<(), Error> {
    let refused = |detail: String| Error::Sandbox {
        what: "seccomp",
        detail,
    };
    let rules = REFUSED
        .iter()
        .map(|&call| (call, Vec::new()))
        .collect::<BTreeMap<_, _>>();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )
    .map_err(|err| refused(err.to_string()))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|err: seccompiler::BackendError| refused(err.to_string()))?;
    seccompiler::apply_filter_all_threads(&program).map_err(|err| refused(err.to_string()))
}
