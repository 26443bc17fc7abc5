//! Where every `carapace:` line and every service line goes: /dev/console (the kernel runs
//! with `quiet`, so kmsg alone would not reach the serial console), /dev/kmsg (so the lines
//! sit between the kernel's own messages), and, once /data is mounted, /data/log/console.log.
//! Lines from before /data was mounted are kept in memory and written when it is.
//!
//! PID 1 is single-threaded; the mutex only gives the sink a safe global home.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::ioctl::{Getter, Opcode};

use crate::error::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

impl Level {
    fn kmsg_prefix(self) -> &'static str {
        match self {
            Level::Info => "<6>",
            Level::Error => "<3>",
        }
    }

    fn syslog_level(self) -> u32 {
        match self {
            Level::Info => 6,
            Level::Error => 3,
        }
    }
}

/// Lines kept while /data is not mounted yet; a boot that cannot mount /data must not eat
/// the memory of a small box with a chatty service.
const EARLY_LINES_MAX_BYTES: usize = 256 * 1024;
/// console.log is rotated to console.log.1 past this, so logs take at most twice this.
pub const LOG_ROTATE_BYTES: u64 = 1024 * 1024;
/// A serial console at 115200 baud writes ~11 bytes per ms; a service flooding its stdout
/// must not stall PID 1 behind it, so a line that cannot be written in this long is dropped.
const CONSOLE_WRITE_BUDGET: Duration = Duration::from_millis(250);
/// printk truncates records near 1 KiB; cut ours first so the cut is at a character.
const KMSG_MAX_LINE: usize = 960;
/// Longest service line passed on; the rest of a longer line starts a new one.
pub const MAX_LINE_BYTES: usize = 4096;

pub const LOG_FILE_NAME: &str = "console.log";
pub const ROTATED_LOG_FILE_NAME: &str = "console.log.1";

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

struct Sink {
    console: Option<File>,
    kmsg: Option<File>,
    /// Records below this level the kernel prints on the console itself (with `quiet`, 4:
    /// errors are, info is not).
    console_loglevel: Option<u32>,
    file_log: FileLog,
}

enum FileLog {
    Buffering(EarlyLines),
    Appending(LogFile),
    Closed,
}

pub fn emit(level: Level, line: &str) {
    with_sink(|sink| sink.emit(level, line));
}

/// Starts appending to `<dir>/console.log`, after the lines buffered so far.
pub fn start_file_log(dir: &Path) -> Result<()> {
    let mut log = LogFile::open(dir)?;
    with_sink(|sink| {
        if let FileLog::Buffering(early) = &mut sink.file_log {
            for line in early.lines.drain(..) {
                log.append(&line);
            }
            if early.dropped > 0 {
                log.append(&format!(
                    "carapace: {} early lines dropped before /data was mounted",
                    early.dropped
                ));
            }
        }
        sink.file_log = FileLog::Appending(log);
    });
    Ok(())
}

/// Closes console.log so /data can be unmounted; later lines reach only console and kmsg.
pub fn stop_file_log() {
    with_sink(|sink| sink.file_log = FileLog::Closed);
}

/// The lines buffered for console.log so far (stage 1 hands them to stage 2).
pub fn take_early_lines() -> Vec<String> {
    let mut taken = Vec::new();
    with_sink(|sink| {
        if let FileLog::Buffering(early) = &mut sink.file_log {
            taken = early.lines.drain(..).collect();
            early.bytes = 0;
        }
    });
    taken
}

/// Adds lines that were already printed elsewhere (by stage 1) to the console.log buffer.
pub fn add_early_lines(lines: impl IntoIterator<Item = String>) {
    with_sink(|sink| {
        if let FileLog::Buffering(early) = &mut sink.file_log {
            for line in lines {
                early.push(line);
            }
        }
    });
}

fn with_sink(f: impl FnOnce(&mut Sink)) {
    let mut guard = SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sink = guard.get_or_insert_with(|| Sink {
        console: None,
        kmsg: None,
        console_loglevel: None,
        file_log: FileLog::Buffering(EarlyLines::default()),
    });
    f(sink);
}

impl Sink {
    fn emit(&mut self, level: Level, line: &str) {
        // /dev only fills once devtmpfs is mounted in stage 1; keep trying until then.
        if self.console.is_none() {
            self.console = open_write_only("/dev/console", OFlags::NONBLOCK | OFlags::NOCTTY);
        }
        if self.kmsg.is_none() {
            self.kmsg = open_write_only("/dev/kmsg", OFlags::NONBLOCK);
        }
        if self.console_loglevel.is_none() {
            self.console_loglevel = std::fs::read_to_string("/proc/sys/kernel/printk")
                .ok()
                .and_then(|text| parse_console_loglevel(&text));
        }
        if let Some(console) = &self.console {
            write_with_budget(console, format!("{line}\n").as_bytes());
            // The kernel will print this record on the same serial line, writing straight to
            // the UART; if our copy were still queued in the tty, the two would interleave
            // mid-line. Let ours go out first.
            if self
                .console_loglevel
                .is_some_and(|console_level| level.syslog_level() < console_level)
            {
                wait_for_output_drain(console);
            }
        }
        if let Some(kmsg) = &mut self.kmsg {
            let record = format!(
                "{}{}\n",
                level.kmsg_prefix(),
                truncate_at_char(line, KMSG_MAX_LINE)
            );
            // kmsg takes one record per write and never blocks; a rate-limited or refused
            // record is only a lost duplicate of the console line.
            let _ = kmsg.write(record.as_bytes());
        }
        match &mut self.file_log {
            FileLog::Buffering(early) => early.push(line.to_owned()),
            FileLog::Appending(log) => log.append(line),
            FileLog::Closed => {}
        }
    }
}

fn open_write_only(path: &str, flags: OFlags) -> Option<File> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC | flags, 0.into()).ok()?;
    Some(File::from(fd))
}

fn write_with_budget(console: &File, mut bytes: &[u8]) {
    let deadline = Instant::now() + CONSOLE_WRITE_BUDGET;
    while !bytes.is_empty() {
        match rustix::io::write(console, bytes) {
            Ok(0) => return,
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                let mut fds = [PollFd::new(console, PollFlags::OUT)];
                let timeout = rustix::time::Timespec::try_from(left).unwrap_or_default();
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
            }
            Err(_) => return,
        }
    }
}

/// Waits (briefly, never for good: a stuck serial line must not stop PID 1) until the tty
/// has handed all queued output to the UART.
fn wait_for_output_drain(console: &File) {
    const TIOCOUTQ: Opcode = 0x5411;
    let deadline = Instant::now() + CONSOLE_WRITE_BUDGET;
    while Instant::now() < deadline {
        // SAFETY: TIOCOUTQ writes one int, the number of bytes still queued for output.
        let queued = unsafe { rustix::ioctl::ioctl(console, Getter::<TIOCOUTQ, i32>::new()) };
        match queued {
            Ok(0) | Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The first field of /proc/sys/kernel/printk: the console log level.
fn parse_console_loglevel(printk: &str) -> Option<u32> {
    printk.split_whitespace().next()?.parse().ok()
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

#[derive(Default)]
pub struct EarlyLines {
    lines: VecDeque<String>,
    bytes: usize,
    dropped: u64,
}

impl EarlyLines {
    /// Keeps the newest lines within [`EARLY_LINES_MAX_BYTES`].
    pub fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > EARLY_LINES_MAX_BYTES {
            match self.lines.pop_front() {
                Some(old) => {
                    self.bytes -= old.len();
                    self.dropped += 1;
                }
                None => break,
            }
        }
    }
}

/// console.log plus one rotated generation, so the logs never take more than 2 MiB.
pub struct LogFile {
    dir: PathBuf,
    file: Option<File>,
    size: u64,
    failed: bool,
}

impl LogFile {
    pub fn open(dir: &Path) -> Result<LogFile> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .context(|| format!("create {}", dir.display()))?;
        let path = dir.join(LOG_FILE_NAME);
        let file = open_append(&path).context(|| format!("open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            dir: dir.to_owned(),
            file: Some(file),
            size,
            failed: false,
        })
    }

    pub fn append(&mut self, line: &str) {
        let record = format!("{line}\n");
        if self.size > 0 && self.size + record.len() as u64 > LOG_ROTATE_BYTES {
            self.rotate();
        }
        let Some(file) = &mut self.file else { return };
        match file.write_all(record.as_bytes()) {
            Ok(()) => {
                self.size += record.len() as u64;
                self.failed = false;
            }
            // A full /data must not stop the console; the next line tries again.
            Err(_) => self.failed = true,
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let current = self.dir.join(LOG_FILE_NAME);
        let _ = fs::rename(&current, self.dir.join(ROTATED_LOG_FILE_NAME));
        self.file = open_append(&current).ok();
        self.size = 0;
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
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
    fn reads_the_console_loglevel() {
        assert_eq!(parse_console_loglevel("4\t4\t1\t7\n"), Some(4));
        assert_eq!(parse_console_loglevel(""), None);
    }

    #[test]
    fn sanitize_replaces_control_characters() {
        assert_eq!(sanitize(b"ok\x1b[2Jx\r"), "ok?[2Jx");
        assert_eq!(sanitize(b"a\tb"), "a\tb");
        assert_eq!(sanitize(b"\xffz"), "\u{fffd}z");
    }

    #[test]
    fn early_lines_keep_the_newest_within_the_limit() {
        let mut early = EarlyLines::default();
        let line = "x".repeat(1024);
        for _ in 0..300 {
            early.push(line.clone());
        }
        assert_eq!(early.lines.len(), 256);
        assert_eq!(early.bytes, 256 * 1024);
        assert_eq!(early.dropped, 44);
    }

    #[test]
    fn log_file_rotates_past_one_mib() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LogFile::open(dir.path()).expect("open");
        let line = "y".repeat(1023); // 1 KiB with the newline
        for _ in 0..1024 {
            log.append(&line);
        }
        assert!(!dir.path().join(ROTATED_LOG_FILE_NAME).exists());
        log.append("first line of the new file");
        let rotated = fs::metadata(dir.path().join(ROTATED_LOG_FILE_NAME)).expect("rotated");
        assert_eq!(rotated.len(), LOG_ROTATE_BYTES);
        let current = fs::read_to_string(dir.path().join(LOG_FILE_NAME)).expect("current");
        assert_eq!(current, "first line of the new file\n");
    }

    #[test]
    fn log_file_appends_to_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(LOG_FILE_NAME), "old\n").expect("write");
        let mut log = LogFile::open(dir.path()).expect("open");
        log.append("new");
        let text = fs::read_to_string(dir.path().join(LOG_FILE_NAME)).expect("read");
        assert_eq!(text, "old\nnew\n");
        assert_eq!(log.size, 8);
    }
}
