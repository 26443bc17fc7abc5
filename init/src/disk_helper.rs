//! Runs the disk helper (/usr/sbin/carapace-disk, init/disk) as a child and waits for its one
//! result line, with a deadline. PID 1 never waits on anything slow but this: it runs before
//! any service exists, so nothing else needs PID 1 meanwhile, and the hardware watchdog (when
//! open) is petted by stage 2's setup thread (watchdog.rs). The helper's stderr lines go to the console as
//! `carapace-disk: <line>`; a helper that fails, crashes or overruns means /data is degraded.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use board_support::{BootParams, DataOutcome, DegradedReason};
use rustix::event::{PollFd, PollFlags};

use crate::{console, signals};

pub const HELPER: &str = "/usr/sbin/carapace-disk";
/// mke2fs of a large SD card with lazy init, or e2fsck of a damaged /data, fits well inside;
/// a helper still running after this is stuck on a failing disk.
const DEADLINE: Duration = Duration::from_secs(300);
/// How often the loop wakes to check the deadline and flush the console.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds what a misbehaving helper can make PID 1 hold.
const MAX_OUTPUT: usize = 64 * 1024;

pub fn run(params: &BootParams) -> DataOutcome {
    let failed = |detail: String| DataOutcome::Degraded {
        reason: DegradedReason::HelperFailed,
        detail,
    };
    let mut command = Command::new(HELPER);
    command
        .args([
            "--data",
            &params.data_partuuid,
            "--esp",
            &params.esp_partuuid,
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a kill on the deadline also stops its mke2fs or e2fsck.
        .process_group(0);
    // SAFETY: only resets the signal mask and SIGPIPE between fork and exec.
    unsafe { command.pre_exec(signals::reset_in_child) };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return failed(format!("run {HELPER}: {err}")),
    };
    let (stdout, finished) = collect(&mut child);
    if !finished {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.wait();
        return failed(format!(
            "{HELPER} ran past its {} s deadline and was killed",
            DEADLINE.as_secs()
        ));
    }
    let status = child
        .wait()
        .map_or_else(|e| e.to_string(), |s| s.to_string());
    let text = String::from_utf8_lossy(&stdout);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => DataOutcome::parse(line).unwrap_or_else(|err| failed(err.to_string())),
        None => failed(format!("{HELPER} printed no result ({status})")),
    }
}

/// Reads the helper's stdout (kept) and stderr (logged line by line) until it exits; `false`
/// when the deadline came first.
fn collect(child: &mut Child) -> (Vec<u8>, bool) {
    let started = Instant::now();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    loop {
        console::flush();
        if started.elapsed() >= DEADLINE {
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
            log_lines(&mut stderr, err_pipe.is_none());
        }
    }
}

/// Reads what a ready pipe holds; closes it (`None`) at end of file. `true` if read.
fn read_some<R: Read + std::os::fd::AsFd>(pipe: &mut Option<R>, into: &mut Vec<u8>) -> bool {
    let Some(reader) = pipe else { return false };
    let mut one = [PollFd::new(&*reader, PollFlags::IN)];
    let zero = rustix::time::Timespec::default();
    match rustix::event::poll(&mut one, Some(&zero)) {
        Ok(0) | Err(_) => return false,
        Ok(_) => {}
    }
    let mut buffer = [0u8; 4096];
    match reader.read(&mut buffer) {
        Ok(0) | Err(_) => {
            *pipe = None;
            true
        }
        Ok(n) => {
            if into.len() < MAX_OUTPUT {
                into.extend(buffer.get(..n).unwrap_or_default());
            }
            true
        }
    }
}

/// Logs the complete lines of `buffer` (and the rest at end of file).
fn log_lines(buffer: &mut Vec<u8>, at_end: bool) {
    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        emit(&line);
    }
    if at_end && !buffer.is_empty() {
        emit(buffer);
        buffer.clear();
    }
}

fn emit(line: &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let text = crate::console::sanitize(line);
    let text = text.trim_end();
    if !text.is_empty() {
        crate::console::emit(
            crate::console::Level::Info,
            &format!("carapace-disk: {text}"),
        );
    }
}
