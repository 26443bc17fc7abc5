//! Starting one service: its directories, environment, pipes, cgroup and credentials.
//!
//! The credential change happens in `pre_exec`, not with `Command::uid/gid`: std applies
//! those before the `pre_exec` closures run, and the capability bounding set can only be
//! dropped while the child is still root. Everything the child needs is prepared before the
//! fork; between fork and exec it only makes system calls.

use std::fs;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::io::FdFlags;
use rustix::pipe::PipeFlags;
use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::cgroup;
use crate::error::{Context, Error, Result};
use crate::service_table::Service;
use crate::signals;

/// The service's end of the notify pipe, as the contract promises it.
pub const NOTIFY_FD: RawFd = 3;
const PATH: &str = "/usr/bin:/usr/sbin";
/// Capabilities are numbered 0..=63 in the 64-bit sets; the kernel knows fewer.
const CAPABILITY_BITS: u32 = 64;

pub struct Spawned {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub notify: OwnedFd,
}

#[derive(Clone, Copy, Debug)]
struct Credentials {
    uid: u32,
    gid: u32,
    keep: CapabilitySet,
}

/// The environment of a service, and nothing else (docs/boot-contract.md).
pub fn environment(service: &Service) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_owned(), PATH.to_owned()),
        ("NOTIFY_FD".to_owned(), NOTIFY_FD.to_string()),
        ("CARAPACE_SERVICE".to_owned(), service.name().to_owned()),
    ];
    match service.state_directory() {
        Some(state) => {
            env.push(("STATE_DIRECTORY".to_owned(), state.clone()));
            env.push(("HOME".to_owned(), state));
        }
        None => env.push(("HOME".to_owned(), "/".to_owned())),
    }
    if let Some(runtime) = service.runtime_directory() {
        env.push(("RUNTIME_DIRECTORY".to_owned(), runtime));
    }
    env
}

pub fn spawn(service: &Service, cgroup_procs: &OwnedFd) -> Result<Spawned> {
    let entry = &service.entry;
    if let Some(state) = service.state_directory() {
        owned_directory(&state, 0o700, entry.uid, entry.gid)?;
    }
    if let Some(runtime) = service.runtime_directory() {
        owned_directory(&runtime, 0o755, entry.uid, entry.gid)?;
    }
    if let Some(tty) = &entry.tty {
        let tty = format!("/dev/{tty}");
        chown(Path::new(&tty), Some(entry.uid), Some(entry.gid))
            .context(|| format!("chown {tty} to {}:{}", entry.uid, entry.gid))?;
    }
    // Every pipe exists, close-on-exec and with PID 1's end non-blocking, before the fork:
    // nothing can fail after the child exists and leave it running untracked.
    let notify = service_pipe("notify")?;
    let stdout = service_pipe("stdout")?;
    let stderr = service_pipe("stderr")?;

    let (program, args) = entry
        .exec
        .split_first()
        .ok_or_else(|| Error::Invalid("empty exec".to_owned()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(environment(service))
        .current_dir(service.state_directory().unwrap_or_else(|| "/".to_owned()))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout.write))
        .stderr(Stdio::from(stderr.write));
    let credentials = Credentials {
        uid: entry.uid,
        gid: entry.gid,
        keep: service.capabilities,
    };
    let procs_fd = cgroup_procs.as_raw_fd();
    let notify_fd = notify.write.as_raw_fd();
    // SAFETY: the closure runs in the forked child, which has a single thread; it only makes
    // system calls on descriptors that the parent keeps open until `spawn` returns, and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || become_service(procs_fd, notify_fd, credentials));
    }
    let child = command.spawn().context(|| format!("start {program}"));
    // The child has its copies; ours of the write ends must go, or the pipes never close.
    drop(command);
    drop(notify.write);
    let child = child?;
    let pid =
        i32::try_from(child.id()).map_err(|_| Error::Invalid("pid out of range".to_owned()))?;
    // Dropping `child` neither waits nor kills; the event loop's waitpid(-1) reaps it.
    drop(child);
    Ok(Spawned {
        pid,
        stdout: stdout.read,
        stderr: stderr.read,
        notify: notify.read,
    })
}

struct ServicePipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// A pipe whose ends are both close-on-exec (the child gets its end by dup2 or fd 3), with
/// PID 1's read end non-blocking and the service's write end blocking, as a service expects.
fn service_pipe(what: &str) -> Result<ServicePipe> {
    let (read, write) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).context(|| format!("create {what} pipe"))?;
    rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK)
        .context(|| format!("make the {what} pipe non-blocking"))?;
    Ok(ServicePipe { read, write })
}

/// Creates `path` if needed and gives it to the service, whatever state it was left in.
fn owned_directory(path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
    if let Err(err) = fs::create_dir(path)
        && err.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(Error::Io {
            what: format!("create {path}"),
            source: err,
        });
    }
    let meta = fs::symlink_metadata(path).context(|| format!("stat {path}"))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{path} exists and is not a directory"
        )));
    }
    chown(Path::new(path), Some(uid), Some(gid))
        .context(|| format!("chown {path} to {uid}:{gid}"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).context(|| format!("chmod {path}"))
}

/// Between fork and exec. Order matters: the cgroup and the bounding set need root, the
/// uid change needs keep-caps to carry listed capabilities over, and the ambient set can
/// only be raised once they are permitted and inheritable.
fn become_service(
    procs_fd: RawFd,
    notify_fd: RawFd,
    credentials: Credentials,
) -> std::io::Result<()> {
    signals::reset_in_child()?;
    // SAFETY: both descriptors were open in the parent at fork time and are inherited.
    let procs = unsafe { BorrowedFd::borrow_raw(procs_fd) };
    let notify = unsafe { BorrowedFd::borrow_raw(notify_fd) };
    // Before fd 3 is taken over: cgroup.procs may be fd 3 itself.
    cgroup::join(procs)?;
    install_notify_fd(notify)?;

    let keep = credentials.keep;
    for bit in 0..CAPABILITY_BITS {
        let capability = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(capability) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(capability) {
            // Past the kernel's last capability.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(err) => return Err(err.into()),
        }
    }
    rustix::thread::set_thread_groups(&[])?;
    if !keep.is_empty() {
        rustix::thread::set_keep_capabilities(true)?;
    }
    let gid = Gid::from_raw(credentials.gid);
    let uid = Uid::from_raw(credentials.uid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)?;
    if !keep.is_empty() {
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: keep,
                permitted: keep,
                inheritable: keep,
            },
        )?;
        for bit in 0..CAPABILITY_BITS {
            let capability = CapabilitySet::from_bits_retain(1 << bit);
            if keep.contains(capability) {
                rustix::thread::configure_capability_in_ambient_set(capability, true)?;
            }
        }
        rustix::thread::set_keep_capabilities(false)?;
    } else {
        rustix::thread::clear_ambient_capability_set()?;
    }
    rustix::thread::set_no_new_privs(true)?;
    Ok(())
}

/// Makes `notify` the child's fd 3 without CLOEXEC.
fn install_notify_fd(notify: BorrowedFd<'_>) -> std::io::Result<()> {
    if notify.as_raw_fd() == NOTIFY_FD {
        rustix::io::fcntl_setfd(notify, FdFlags::empty())?;
        return Ok(());
    }
    // SAFETY: fd 3 is only named here so dup2 can replace whatever it is; ManuallyDrop
    // keeps us from closing it afterwards.
    let mut target = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(NOTIFY_FD) });
    rustix::io::dup2(notify.as_fd(), &mut target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_table;

    fn service(extra: &str) -> Service {
        let text = format!(
            "[[service]]\nname = \"agentd\"\nexec = [\"/usr/bin/agentd\"]\nuid = 1000\ngid = 1000\nmemory_max = 4194304\n{extra}"
        );
        service_table::parse(&text).expect("parse").remove(0)
    }

    #[test]
    fn environment_follows_the_contract() {
        let env = environment(&service("state_dir = true\nruntime_dir = true"));
        let expected = [
            ("PATH", "/usr/bin:/usr/sbin"),
            ("NOTIFY_FD", "3"),
            ("CARAPACE_SERVICE", "agentd"),
            ("STATE_DIRECTORY", "/data/agentd"),
            ("HOME", "/data/agentd"),
            ("RUNTIME_DIRECTORY", "/run/agentd"),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn without_directories_home_is_root() {
        let env = environment(&service(""));
        assert!(env.iter().any(|(k, v)| k == "HOME" && v == "/"));
        assert!(
            !env.iter()
                .any(|(k, _)| k == "STATE_DIRECTORY" || k == "RUNTIME_DIRECTORY")
        );
    }

    /// PID 1 blocks the signals it reads from its signalfd, and std's fork/exec path passes
    /// the blocked mask on to the child (checked: SigBlk 0x14000 without our reset). The
    /// services must start with nothing blocked and SIGPIPE at its default.
    #[test]
    fn services_start_with_an_empty_signal_mask() {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGTERM);
        blocked.add(Signal::SIGCHLD);
        let mut previous = SigSet::empty();
        nix::sys::signal::pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&blocked),
            Some(&mut previous),
        )
        .expect("block");
        let mut command = Command::new("/bin/cat");
        command.arg("/proc/self/status");
        // SAFETY: the same reset the services get, between fork and exec.
        unsafe { command.pre_exec(signals::reset_in_child) };
        let output = command.output().expect("run cat");
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)
            .expect("restore");
        let status = String::from_utf8_lossy(&output.stdout).into_owned();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).expect(name);
            line.split_whitespace().nth(1).expect("value").to_owned()
        };
        assert_eq!(field("SigBlk:"), "0000000000000000");
        let ignored = u64::from_str_radix(&field("SigIgn:"), 16).expect("hex");
        assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE is not ignored");
    }

    #[test]
    fn service_pipes_are_cloexec_and_nonblocking_only_on_pid1s_end() {
        let pipe = service_pipe("test").expect("pipe");
        for fd in [&pipe.read, &pipe.write] {
            assert!(
                rustix::io::fcntl_getfd(fd)
                    .expect("getfd")
                    .contains(FdFlags::CLOEXEC)
            );
        }
        let nonblocking = |fd: &OwnedFd| {
            rustix::fs::fcntl_getfl(fd)
                .expect("getfl")
                .contains(rustix::fs::OFlags::NONBLOCK)
        };
        assert!(nonblocking(&pipe.read));
        assert!(!nonblocking(&pipe.write));
        let mut buffer = [0u8; 8];
        assert_eq!(
            rustix::io::read(&pipe.read, &mut buffer),
            Err(rustix::io::Errno::AGAIN)
        );
    }

    #[test]
    fn notify_fd_ends_up_as_fd_3_in_the_child() {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        let write_fd = write.as_raw_fd();
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo READY=1 >&3"]);
        // SAFETY: only system calls on a descriptor open in the parent.
        unsafe {
            command.pre_exec(move || install_notify_fd(BorrowedFd::borrow_raw(write_fd)));
        }
        let status = command.status().expect("run sh");
        drop(write);
        assert!(status.success());
        let mut buffer = [0u8; 64];
        let n = rustix::io::read(&read, &mut buffer).expect("read");
        assert_eq!(&buffer[..n], b"READY=1\n");
    }
}
