//! Runs a one-shot program PID 1 needs before any service exists (the disk helper, nft for
//! the firewall's base policy) as a child, with a deadline. PID 1 never waits on anything
//! slow but these: nothing else needs PID 1 meanwhile, and the hardware watchdog (when open)
//! is petted by stage 2's setup thread (watchdog.rs). The program's stderr lines go to the
//! console as `<prefix>: <line>`; a program still running at its deadline is killed with its
//! process group.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::{console, signals};

/// How often the loop wakes to check the deadline and flush the console.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds what a misbehaving program can make PID 1 hold.
const MAX_OUTPUT: usize = 64 * 1024;

/// Its stdout and exit status, or why it did not finish.
pub fn run(
    program: &str,
    args: &[&str],
    deadline: Duration,
    prefix: &str,
) -> Result<(Vec<u8>, std::process::ExitStatus), String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a kill on the deadline also stops its children.
        .process_group(0);
    // SAFETY: only resets the signal mask and SIGPIPE between fork and exec.
    unsafe { command.pre_exec(signals::reset_in_child) };
    let mut child = command
        .spawn()
        .map_err(|err| format!("run {program}: {err}"))?;
    let (stdout, finished) = collect(&mut child, deadline, prefix);
    if !finished {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait();
        return Err(format!(
            "{program} ran past its {} s deadline and was killed",
            deadline.as_secs()
        ));
    }
    let status = child
        .wait()
        .map_err(|err| format!("wait for {program}: {err}"))?;
    Ok((stdout, status))
}

/// Reads the program's stdout (kept) and stderr (logged line by line) until it exits; `false`
/// when the deadline came first.
fn collect(child: &mut Child, deadline: Duration, prefix: &str) -> (Vec<u8>, bool) {
    let started = Instant::now();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    loop {
        console::flush();
        if started.elapsed() >= deadline {
            return (stdout, false);
        }
        if out_pipe.is_none() && err_pipe.is_none() {
            if let Ok(Some(_)) = child.try_wait() {
                return (stdout, true);
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let mut fds = Vec::new();
        if let Some(pipe) = &out_pipe {
            fds.push(PollFd::new(pipe, PollFlags::IN));
        }
        if let Some(pipe) = &err_pipe {
            fds.push(PollFd::new(pipe, PollFlags::IN));
        }
        let timeout = rustix::time::Timespec::try_from(POLL_INTERVAL).unwrap_or_default();
        if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(fds);
        read_some(&mut out_pipe, &mut stdout);
        if read_some(&mut err_pipe, &mut stderr) {
            log_lines(&mut stderr, err_pipe.is_none(), prefix);
        }
    }
}

/// Reads what a ready pipe holds; closes it (`None`) at end of file. `true` if read.
fn read_some<R: Read + std::os::fd::AsFd>(pipe: &mut Option<R>, into: &mut Vec<u8>) -> bool {
    let Some(reader) = pipe else { return false };
    let mut one = [PollFd::new(&*reader, PollFlags::IN)];
    let zero = rustix::time::Timespec::default();
    if !matches!(rustix::event::poll(&mut one, Some(&zero)), Ok(n) if n > 0) {
        return false;
    }
    let mut buffer = [0u8; 4096];
    match reader.read(&mut buffer) {
        Ok(n) if n > 0 && into.len() < MAX_OUTPUT => {
            into.extend(buffer.get(..n).unwrap_or_default())
        }
        Ok(n) if n > 0 => {}
        _ => *pipe = None,
    }
    true
}

/// Logs the complete lines of `buffer` (and the rest at end of file).
fn log_lines(buffer: &mut Vec<u8>, at_end: bool, prefix: &str) {
    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        emit(&line, prefix);
    }
    if at_end && !buffer.is_empty() {
        emit(&std::mem::take(buffer), prefix);
    }
}

fn emit(line: &[u8], prefix: &str) {
    let text = console::sanitize(line.strip_suffix(b"\n").unwrap_or(line));
    if !text.trim_end().is_empty() {
        console::emit(
            console::Level::Info,
            &format!("{prefix}: {}", text.trim_end()),
        );
    }
}
