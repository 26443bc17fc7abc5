//! The walls around wasmtime, so that a bug in it (or in Cranelift's code) still leaves a skill
//! with nothing: Landlock takes the file system away except the skill's scratch directory (its
//! compiled code, which the compile step, a process of its own, writes, is opened before) and
//! takes TCP away; seccomp refuses sockets, exec, ptrace, mounts, namespaces, module loading,
//! BPF and the like; rlimits cap a scratch file's size and forbid core dumps. Each step only
//! narrows the one before; none can be undone by the process. Around all of it, in the image,
//! the service's own uid and cgroup (memory, pids; service.rs).

use crate::Error;
use carapace_skills::sandbox_protocol::Call;
use landlock::{
    ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};
use std::path::Path;

/// The newest Landlock ABI we ask for; older kernels give what they have.
const LANDLOCK_ABI: ABI = ABI::V5;

/// For the compile step: the compiled-code directory (read and write; the component comes on
/// stdin); nothing else; no TCP.
pub fn confine_for_compiling(compiled_dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(compiled_dir).map_err(Error::io("create", compiled_dir))?;
    landlock_layer(&[(compiled_dir, AccessFs::from_all(LANDLOCK_ABI))])
}

/// Before the skill's code is loaded: its scratch directory (read and write), nothing else; no
/// TCP; then the limits and seccomp. Its compiled form is opened before, and read through that
/// descriptor: a rule on the file's path would hold for the inode it named then, and a second
/// call that compiled the same skill at once renames a new inode over it. The process is still
/// one thread here, so every thread it starts later inherits all of it.
pub fn confine_for_running(call: &Call) -> Result<(), Error> {
    landlock_layer(&[(&call.scratch, AccessFs::from_all(LANDLOCK_ABI))])?;
    limit_files(call.limits.scratch_file_bytes)?;
    crate::syscalls::refuse_dangerous()
}

fn landlock_layer(rules: &[(&Path, landlock::BitFlags<AccessFs>)]) -> Result<(), Error> {
    let refused = |detail: String| Error::Sandbox {
        what: "Landlock",
        detail,
    };
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .and_then(|ruleset| ruleset.handle_access(AccessNet::from_all(LANDLOCK_ABI)))
        .and_then(|ruleset| ruleset.create())
        .map_err(|err| refused(err.to_string()))?;
    for (path, access) in rules {
        let fd = PathFd::new(path).map_err(|err| refused(format!("{}: {err}", path.display())))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, *access))
            .map_err(|err| refused(format!("{}: {err}", path.display())))?;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|err| refused(err.to_string()))?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(refused(
            "this kernel has no Landlock (it needs CONFIG_SECURITY_LANDLOCK and landlock in \
             lsm=); skill code is not run without it"
                .into(),
        ));
    }
    Ok(())
}

/// A scratch file stops growing at `file_bytes` (the write fails with EFBIG instead of the
/// process being killed by SIGXFSZ); no core dumps.
fn limit_files(file_bytes: u64) -> Result<(), Error> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |resource, value| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .map_err(|err| Error::Sandbox {
            what: "setrlimit",
            detail: err.to_string(),
        })
    };
    // SAFETY: setting a signal's disposition to "ignore" runs no handler code; nothing else in
    // this process handles SIGXFSZ.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    limit(Resource::Fsize, file_bytes)?;
    limit(Resource::Core, 0)
}
