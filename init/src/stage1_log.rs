//! Stage 1's console lines, handed to stage 2 so they reach /data/log/console.log too: exec
//! keeps nothing but open file descriptors, so they travel in a memfd without CLOEXEC whose
//! number is in the environment.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::fs::FileExt;

use rustix::fs::MemfdFlags;

pub const FD_ENV: &str = "CARAPACE_STAGE1_LOG_FD";
const MEMFD_NAME: &str = "carapace-stage1-log";
const MAX_BYTES: u64 = 64 * 1024;

/// Writes `lines` to a memfd that survives exec; returns the environment entry naming it.
pub fn hand_over(lines: &[String]) -> Option<(String, String)> {
    let fd = rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::empty()).ok()?;
    let mut file = File::from(fd);
    for line in lines {
        file.write_all(format!("{line}\n").as_bytes()).ok()?;
    }
    Some((FD_ENV.to_owned(), file.into_raw_fd().to_string()))
}

/// The lines stage 1 handed over, if it did.
pub fn take_over() -> Vec<String> {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Vec::new();
    };
    // Only take ownership of the descriptor if it really is stage 1's memfd: an inherited
    // variable must not make us close a descriptor someone else owns.
    let is_ours = fd > 2
        && std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|target| {
            target
                .to_string_lossy()
                .starts_with(&format!("/memfd:{MEMFD_NAME}"))
        });
    if !is_ours {
        return Vec::new();
    }
    // SAFETY: the descriptor is open (its /proc link exists), is the memfd stage 1 left for
    // us and nothing else in this process refers to it.
    let file = unsafe { File::from_raw_fd(fd) };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0).min(MAX_BYTES);
    let mut bytes = vec![0u8; size as usize];
    if file.read_exact_at(&mut bytes, 0).is_err() {
        return Vec::new();
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}
