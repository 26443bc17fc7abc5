//! carapace-logger: the service that keeps the box's log on /data, so PID 1 never writes a
//! file from its event loop. It reads /dev/kmsg from the start of the kernel's ring (stage 1,
//! stage 2, every service line PID 1 passed on, the kernel's own messages) and appends each
//! record to $STATE_DIRECTORY/console.log, rotated to console.log.1 (rotate.rs), so the log
//! never takes more than twice [`rotate::ROTATE_BYTES`]. It runs unprivileged; CAP_SYSLOG
//! lets it read kmsg under kernel.dmesg_restrict=1.

mod error;
mod kmsg;
mod recent;
mod rotate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::kmsg::Record;
use crate::rotate::RotatingLog;

const KMSG: &str = "/dev/kmsg";
/// One kmsg record per read; the kernel refuses a buffer too small for the record.
const RECORD_BUFFER: usize = 8192;
/// Records gathered before one write to the file.
const BATCH_BYTES: usize = 64 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            println!("logger error={err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let readers = recent::readers(&args).map_err(Error::Usage)?;
    let dir = std::env::var_os("STATE_DIRECTORY")
        .map_or_else(|| PathBuf::from("/data/logger"), PathBuf::from);
    // Without a runtime directory (run by hand) there is no socket for recent lines.
    let recent_socket = std::env::var_os("RUNTIME_DIRECTORY")
        .map(|dir| recent::listen(Path::new(&dir)))
        .transpose()?;
    let mut recent = recent::Recent::default();
    let kmsg = rustix::fs::open(
        KMSG,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| Error::Io {
        what: format!("open {KMSG}"),
        source: source.into(),
    })?;
    let mut log = RotatingLog::open(&dir)?;
    println!("logger started file={}", log.path().display());
    notify_ready();

    let mut buffer = vec![0u8; RECORD_BUFFER];
    let mut batch = String::new();
    let mut last_seq: Option<u64> = None;
    loop {
        match rustix::io::read(&kmsg, &mut buffer) {
            Ok(n) => {
                let text = String::from_utf8_lossy(buffer.get(..n).unwrap_or_default());
                if let Some(record) = Record::parse(&text) {
                    if let Some(lost) = kmsg::lost_between(last_seq, record.seq) {
                        batch.push_str(&format!("logger: {lost} kernel log records were overwritten before they were read\n"));
                    }
                    last_seq = Some(record.seq);
                    let line = record.to_line();
                    recent.push(&line);
                    batch.push_str(&line);
                    batch.push('\n');
                }
                if batch.len() < BATCH_BYTES {
                    continue;
                }
            }
            // Records were overwritten while we were behind; the next read goes on after them.
            Err(Errno::PIPE) | Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {}
            Err(err) => {
                return Err(Error::Io {
                    what: format!("read {KMSG}"),
                    source: err.into(),
                });
            }
        }
        log.append(&batch);
        batch.clear();
        let polled = match &recent_socket {
            Some(socket) => {
                let mut fds = [
                    PollFd::new(&kmsg, PollFlags::IN),
                    PollFd::new(socket, PollFlags::IN),
                ];
                let polled = rustix::event::poll(&mut fds, None);
                if !fds[1].revents().is_empty() {
                    recent::serve_waiting(socket, &recent, &readers);
                }
                polled
            }
            None => rustix::event::poll(&mut [PollFd::new(&kmsg, PollFlags::IN)], None),
        };
        if polled.is_err() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// READY=1 to PID 1 on $NOTIFY_FD (docs/boot-contract.md); skipped when run by hand.
fn notify_ready() {
    let failed = |err: &dyn std::fmt::Display| println!("logger error=notify {err}");
    match NotifyFd::from_env() {
        Ok(Some(pipe)) => {
            if let Err(err) = pipe.send(&Message::Ready) {
                failed(&err);
            }
        }
        Ok(None) => {}
        Err(err) => failed(&err),
    }
}
