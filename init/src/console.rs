//! Where every `carapace:` line and every service line goes: /dev/kmsg at once (it never
//! blocks; the logger service keeps it on /data), and /dev/console (the kernel runs with
//! `quiet`, so kmsg alone would not reach the serial console) through a bounded queue that is
//! written only as fast as the console takes it: PID 1 never waits on the serial port.
//!
//! PID 1 is single-threaded; the mutex only gives the sink a safe global home.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::ioctl::{Getter, Opcode};

use carapace_lifecycle::console_queue::ConsoleQueue;

pub use carapace_lifecycle::Level;

/// Errors go to kmsg as warnings (4): with `quiet` the kernel prints records below 4 on the
/// serial line itself, and its copy would interleave with ours mid-line.
fn kmsg_prefix(level: Level) -> &'static str {
    match level {
        Level::Info => "<6>",
        Level::Error => "<4>",
    }
}

/// printk truncates records near 1 KiB; cut ours first so the cut is at a character.
const KMSG_MAX_LINE: usize = 960;
/// The `console dropped` line comes at most this often, and only when the count grew.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

#[derive(Default)]
struct Sink {
    console: Option<File>,
    kmsg: Option<File>,
    queue: ConsoleQueue,
    /// The rest of a line the console took only part of.
    partial: Vec<u8>,
    reported_drops: u64,
    last_drop_report: Option<Instant>,
}

/// One of PID 1's own lines.
pub fn emit(level: Level, line: &str) {
    with_sink(|sink| {
        sink.open();
        sink.kmsg(level, line);
        sink.queue.push_own(line.to_owned());
        sink.flush();
    });
}

/// A line of service `name` (already prefixed with `<name>: `).
pub fn emit_service(name: &str, line: String) {
    with_sink(|sink| {
        sink.open();
        sink.kmsg(Level::Info, &line);
        sink.queue.push_service(name, line);
        sink.flush();
    });
}

/// Writes what the console takes now, and the drop count when it is due. Never blocks.
pub fn flush() {
    with_sink(Sink::flush);
}

/// Whether lines wait for the console to take more.
pub fn pending() -> bool {
    let mut pending = false;
    with_sink(|sink| pending = sink.console.is_some() && sink.has_output());
    pending
}

/// A second descriptor of the console for the event loop to poll for POLLOUT.
pub fn poll_handle() -> Option<OwnedFd> {
    let mut handle = None;
    with_sink(|sink| {
        sink.open();
        handle = sink
            .console
            .as_ref()
            .and_then(|c| c.try_clone().ok())
            .map(OwnedFd::from);
    });
    handle
}

/// Waits up to `budget` for everything queued to reach the serial line: only at the end of
/// a stage (switch_root, power off, FATAL), when nothing else is left to do.
pub fn drain(budget: Duration) {
    let deadline = Instant::now() + budget;
    with_sink(|sink| {
        sink.open();
        let Some(console) = sink.console.as_ref().and_then(|c| c.try_clone().ok()) else {
            return;
        };
        loop {
            sink.flush();
            let left = deadline.saturating_duration_since(Instant::now());
            if !sink.has_output() || left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(&console, PollFlags::OUT)];
            let timeout = rustix::time::Timespec::try_from(left).unwrap_or_default();
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
        }
        wait_for_output_drain(&console, deadline);
    });
}

fn with_sink(f: impl FnOnce(&mut Sink)) {
    let mut guard = SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(Sink::default));
}

impl Sink {
    /// /dev only fills once devtmpfs is mounted in stage 1; keep trying until then.
    fn open(&mut self) {
        if self.console.is_none() {
            self.console = open_write_only("/dev/console", OFlags::NONBLOCK | OFlags::NOCTTY);
        }
        if self.kmsg.is_none() {
            self.kmsg = open_write_only("/dev/kmsg", OFlags::NONBLOCK);
        }
    }

    fn kmsg(&mut self, level: Level, line: &str) {
        if let Some(kmsg) = &mut self.kmsg {
            let record = format!(
                "{}{}\n",
                kmsg_prefix(level),
                truncate_at_char(line, KMSG_MAX_LINE)
            );
            // kmsg takes one record per write and never blocks; a refused record is lost.
            let _ = kmsg.write(record.as_bytes());
        }
    }

    fn has_output(&self) -> bool {
        !self.partial.is_empty() || !self.queue.is_empty()
    }

    fn flush(&mut self) {
        self.report_drops();
        let Some(console) = &self.console else { return };
        loop {
            if self.partial.is_empty() {
                match self.queue.pop() {
                    Some(line) => self.partial = format!("{line}\n").into_bytes(),
                    None => return,
                }
            }
            match rustix::io::write(console, &self.partial) {
                Ok(written) if written > 0 => {
                    self.partial.drain(..written.min(self.partial.len()));
                }
                Err(Errno::INTR) => {}
                // Full (EAGAIN): the event loop polls for POLLOUT. A broken console drops
                // the line rather than spinning on it.
                Err(Errno::AGAIN) => return,
                _ => self.partial.clear(),
            }
        }
    }

    fn report_drops(&mut self) {
        let dropped = self.queue.dropped;
        let now = Instant::now();
        let due = self
            .last_drop_report
            .is_none_or(|last| now.saturating_duration_since(last) >= DROP_REPORT_INTERVAL);
        if dropped > self.reported_drops && due {
            self.reported_drops = dropped;
            self.last_drop_report = Some(now);
            let line = format!("carapace: console dropped lines={dropped}");
            self.kmsg(Level::Info, &line);
            self.queue.push_own(line);
        }
    }
}

fn open_write_only(path: &str, flags: OFlags) -> Option<File> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC | flags, 0.into()).ok()?;
    Some(File::from(fd))
}

/// Waits (until `deadline`, never for good: a stuck serial line must not stop PID 1) until
/// the tty has handed all queued output to the UART.
fn wait_for_output_drain(console: &File, deadline: Instant) {
    const TIOCOUTQ: Opcode = 0x5411;
    while Instant::now() < deadline {
        // SAFETY: TIOCOUTQ writes one int, the number of bytes still queued for output.
        let queued = unsafe { rustix::ioctl::ioctl(console, Getter::<TIOCOUTQ, i32>::new()) };
        match queued {
            Ok(0) | Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The longest prefix of `line` of at most `max` bytes that ends at a character boundary.
pub fn truncate_at_char(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.get(..end).unwrap_or_default()
}

/// Service output is untrusted: control characters could repaint or lock up the console.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_character_boundary() {
        assert_eq!(truncate_at_char("hello", 10), "hello");
        assert_eq!(truncate_at_char("hello", 3), "hel");
        // 'é' is two bytes; cutting in its middle must back off to before it.
        assert_eq!(truncate_at_char("aé", 2), "a");
    }

    #[test]
    fn sanitize_replaces_control_characters() {
        assert_eq!(sanitize(b"ok\x1b[2Jx\r"), "ok?[2Jx");
        assert_eq!(sanitize(b"a\tb"), "a\tb");
        assert_eq!(sanitize(b"\xffz"), "\u{fffd}z");
    }

    /// A console that takes nothing (a full pipe stands in for a full tty) never blocks the
    /// caller; what it cannot take stays queued, and drops are reported once due.
    #[test]
    fn a_full_console_neither_blocks_nor_loses_own_lines() {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).expect("pipe");
        let mut sink = Sink {
            console: Some(File::from(write)),
            ..Sink::default()
        };
        let started = Instant::now();
        for i in 0..2000 {
            sink.queue
                .push_service("chatty", format!("chatty {i} {}", "z".repeat(200)));
            sink.flush();
        }
        sink.queue.push_own("carapace: still here".to_owned());
        sink.flush();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(sink.queue.dropped > 0);
        // Empty the pipe: the next flush writes the own line (and the drop report) first.
        let mut buffer = vec![0u8; 1 << 20];
        while rustix::io::read(&read, &mut buffer).is_ok_and(|n| n > 0) {}
        sink.last_drop_report = None;
        sink.flush();
        let n = rustix::io::read(&read, &mut buffer).expect("read");
        let text = String::from_utf8_lossy(&buffer[..n]);
        let own = text.find("carapace: still here\n").expect("own line");
        let report = text
            .rfind("carapace: console dropped lines=")
            .expect("report");
        assert!(own < report, "{text}");
    }
}
