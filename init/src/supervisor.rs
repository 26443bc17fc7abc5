//! PID 1's event loop: one thread, one `poll` over the signalfd, the power buttons, every
//! service's stdout, stderr and notify pipes, and the console while lines wait for it; the
//! poll timeout drives the timers. The decisions (start, ready, restart, health, shutdown)
//! are lifecycle.rs's; this file does the I/O they call for and feeds back what happened.
//!
//! Children are reaped only here, with waitpid(-1, WNOHANG) after SIGCHLD: std's
//! `Child::wait` would race this global reaper for the same pids.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use board_support::notify::{self, LineBuffer, Message};
use board_support::{Slot, box_health};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::cgroup::ServiceCgroup;
use crate::console;
use crate::service_table::Service;
use crate::signals::{Action, Event, Signals};
use crate::watchdog::Watchdog;
use crate::{proc_status, spawn, unready_boots};
use carapace_lifecycle::{Input, Lifecycle, Output};

/// How often the hardware watchdog is petted while healthy.
const PET_INTERVAL: Duration = Duration::from_secs(1);
/// How often PID 1 says the longest gap between two pets so far.
const PET_REPORT_INTERVAL: Duration = Duration::from_secs(30);
const IDLE_RSS_DELAY: Duration = Duration::from_secs(3);
const ORPHAN_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// While shutting down, cgroups are checked for leftover processes this often.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 4096;
/// Reads per pipe per wakeup, so one chatty service cannot starve the others.
const READS_PER_WAKEUP: usize = 4;
/// Reads when a service has exited and its pipes are emptied for the last time.
const READS_AT_EXIT: usize = 64;

pub struct Supervisor {
    life: Lifecycle,
    procs: Vec<Proc>,
    signals: Signals,
    power_buttons: Vec<Option<OwnedFd>>,
    watchdog: Option<Watchdog>,
    slot: Slot,
    idle_rss_due: Option<Instant>,
    orphans: Orphans,
    next_pet: Instant,
    next_pet_report: Instant,
    /// The last verdict marked for the update service (board_support::box_health).
    marked_unhealthy: bool,
    /// Polled for POLLOUT while lines wait for the serial console.
    console: Option<OwnedFd>,
}

/// What the loop ends with: the action to take, and the watchdog to keep petting meanwhile.
pub struct Finished {
    pub action: Action,
    pub watchdog: Option<Watchdog>,
}

/// The I/O side of one service.
struct Proc {
    service: Service,
    cgroup: Option<ServiceCgroup>,
    running: Option<Running>,
    status: Option<String>,
}

struct Running {
    pid: i32,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
    notify: Option<Pipe>,
}

impl Running {
    fn pipe(&mut self, kind: PipeKind) -> &mut Option<Pipe> {
        match kind {
            PipeKind::Stdout => &mut self.stdout,
            PipeKind::Stderr => &mut self.stderr,
            PipeKind::Notify => &mut self.notify,
        }
    }
}

struct Pipe {
    fd: OwnedFd,
    lines: LineBuffer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeKind {
    Stdout,
    Stderr,
    Notify,
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Signals,
    Console,
    PowerButton(usize),
    Pipe(usize, PipeKind),
}

#[derive(Default)]
struct Orphans {
    total: u64,
    reported: u64,
    last_report: Option<Instant>,
}

impl Orphans {
    /// When the next `reaped orphans` line is due: only if the count changed, at most one
    /// per second.
    fn due(&self, now: Instant) -> Option<Instant> {
        (self.total != self.reported).then(|| {
            self.last_report
                .map_or(now, |last| last + ORPHAN_REPORT_INTERVAL)
        })
    }
}

impl Supervisor {
    pub fn new(
        services: Vec<Service>,
        signals: Signals,
        power_buttons: Vec<OwnedFd>,
        watchdog: Option<Watchdog>,
        slot: Slot,
    ) -> Supervisor {
        let life = Lifecycle::new(&services.iter().map(|s| &s.entry).collect::<Vec<_>>());
        let procs = services
            .into_iter()
            .map(|service| Proc {
                service,
                cgroup: None,
                running: None,
                status: None,
            })
            .collect();
        let now = Instant::now();
        Supervisor {
            life,
            procs,
            signals,
            power_buttons: power_buttons.into_iter().map(Some).collect(),
            watchdog,
            slot,
            idle_rss_due: None,
            orphans: Orphans::default(),
            next_pet: now,
            next_pet_report: now + PET_REPORT_INTERVAL,
            marked_unhealthy: false,
            console: console::poll_handle(),
        }
    }

    /// A degraded boot: services are held, so the box is never `ready` (degraded.rs).
    pub fn without_ready_line(mut self) -> Supervisor {
        self.life.never_ready();
        self
    }

    /// Starts the services and runs until a shutdown has stopped them all.
    pub fn run(mut self) -> Finished {
        let boot = self.life.boot();
        let mut finished = self.perform(boot, Instant::now());
        loop {
            let now = Instant::now();
            finished = finished.or_else(|| self.on_timers(now));
            if let Some(action) = finished {
                return Finished {
                    action,
                    watchdog: self.watchdog,
                };
            }
            let timeout = self.poll_timeout(now);
            for (source, events) in self.poll(timeout) {
                finished = finished.or(self.on_readable(source, events));
            }
        }
    }

    /// Does what the lifecycle asked, feeding each result back; returns a finished shutdown.
    fn perform(&mut self, outputs: Vec<Output>, now: Instant) -> Option<Action> {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut finished = None;
        while let Some(output) = queue.pop_front() {
            let feedback = match output {
                Output::Start(index) => Some(self.start(index)),
                Output::ReportCreds(index) => {
                    if let Some(proc) = self.procs.get(index)
                        && let Some(running) = &proc.running
                    {
                        report_creds(proc.service.name(), running.pid);
                    }
                    None
                }
                Output::AnnounceReady => {
                    self.announce_ready(now);
                    None
                }
                Output::KillCgroup(index) => {
                    if let Some(cgroup) = self.procs.get(index).and_then(|p| p.cgroup.as_ref()) {
                        cgroup.kill_all();
                    }
                    None
                }
                Output::Terminate(index) => self.signal(index, rustix::process::Signal::TERM),
                Output::Kill(index) => self.signal(index, rustix::process::Signal::KILL),
                Output::KillEverything => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(-1),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    None
                }
                Output::Log(level, text) => {
                    console::emit(level, &format!("carapace: {text}"));
                    None
                }
                Output::Finish(action) => {
                    finished = Some(action);
                    None
                }
            };
            if let Some(input) = feedback {
                queue.extend(self.life.handle(input, now));
            }
        }
        finished
    }

    fn start(&mut self, index: usize) -> Input {
        let Some(proc) = self.procs.get_mut(index) else {
            return Input::StartFailed(index, "no such service".to_owned());
        };
        match start_service(proc) {
            Ok(pid) => {
                let entry = &proc.service.entry;
                log_info!(
                    "service {} started pid={pid} uid={} gid={}",
                    entry.name,
                    entry.uid,
                    entry.gid
                );
                Input::Started(index)
            }
            Err(err) => Input::StartFailed(index, err.to_string()),
        }
    }

    fn signal(&self, index: usize, signal: rustix::process::Signal) -> Option<Input> {
        if let Some(running) = self.procs.get(index).and_then(|p| p.running.as_ref())
            && let Some(pid) = Pid::from_raw(running.pid)
        {
            let _ = rustix::process::kill_process(pid, signal);
        }
        None
    }

    fn poll(&self, timeout: Duration) -> Vec<(Source, PollFlags)> {
        let mut fds = vec![PollFd::new(self.signals.fd(), PollFlags::IN)];
        let mut sources = vec![Source::Signals];
        if let Some(console) = &self.console
            && console::pending()
        {
            fds.push(PollFd::new(console, PollFlags::OUT));
            sources.push(Source::Console);
        }
        for (index, fd) in self.power_buttons.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                sources.push(Source::PowerButton(index));
            }
        }
        for (index, proc) in self.procs.iter().enumerate() {
            let Some(running) = &proc.running else {
                continue;
            };
            for (kind, pipe) in [
                (PipeKind::Stdout, &running.stdout),
                (PipeKind::Stderr, &running.stderr),
                (PipeKind::Notify, &running.notify),
            ] {
                if let Some(pipe) = pipe {
                    fds.push(PollFd::new(&pipe.fd, PollFlags::IN));
                    sources.push(Source::Pipe(index, kind));
                }
            }
        }
        let timeout = rustix::time::Timespec::try_from(timeout).unwrap_or_default();
        if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
            // EINTR, or ENOMEM: the timers run and the next poll tries again.
            return Vec::new();
        }
        fds.iter()
            .zip(sources)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(fd, source)| (source, fd.revents()))
            .collect()
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let mut next = self.next_pet.min(self.next_pet_report);
        for at in [
            self.life.next_deadline(),
            self.orphans.due(now),
            self.idle_rss_due,
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(at);
        }
        let cap = if self.life.is_shutting_down() {
            SHUTDOWN_POLL
        } else {
            PET_INTERVAL
        };
        next.saturating_duration_since(now).min(cap)
    }

    fn on_readable(&mut self, source: Source, events: PollFlags) -> Option<Action> {
        let now = Instant::now();
        match source {
            Source::Signals => {
                let mut finished = None;
                for event in self.signals.drain() {
                    let outputs = match event {
                        Event::ChildExited => self.reap(now),
                        Event::Shutdown { reason, action } => {
                            self.life.handle(Input::Shutdown(reason, action), now)
                        }
                    };
                    finished = finished.or(self.perform(outputs, now));
                }
                finished
            }
            Source::Console => {
                console::flush();
                None
            }
            Source::PowerButton(index) => {
                if self.read_power_button(index, events) {
                    let input = Input::Shutdown("power-button", Action::PowerOff);
                    let outputs = self.life.handle(input, now);
                    return self.perform(outputs, now);
                }
                None
            }
            Source::Pipe(index, kind) => {
                let inputs = self.read_service_pipe(index, kind, READS_PER_WAKEUP);
                let mut finished = None;
                for input in inputs {
                    let outputs = self.life.handle(input, now);
                    finished = finished.or(self.perform(outputs, now));
                }
                finished
            }
        }
    }

    /// Reads the button's events; whether it was pressed.
    fn read_power_button(&mut self, index: usize, events: PollFlags) -> bool {
        let Some(slot) = self.power_buttons.get_mut(index) else {
            return false;
        };
        let Some(fd) = slot else { return false };
        let mut pressed = false;
        let mut broken = events.intersects(PollFlags::ERR | PollFlags::NVAL);
        let mut buffer = [0u8; board_support::power_key::INPUT_EVENT_SIZE * 16];
        loop {
            match rustix::io::read(&*fd, &mut buffer) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    pressed |= board_support::power_key::contains_press(
                        buffer.get(..n).unwrap_or_default(),
                    )
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            *slot = None;
        }
        pressed
    }

    /// Reads a pipe; service lines go to the console, notify lines come back as inputs.
    fn read_service_pipe(&mut self, index: usize, kind: PipeKind, max_reads: usize) -> Vec<Input> {
        let mut inputs = Vec::new();
        let Some(proc) = self.procs.get_mut(index) else {
            return inputs;
        };
        let name = proc.service.name().to_owned();
        let Some(running) = &mut proc.running else {
            return inputs;
        };
        let slot = running.pipe(kind);
        let Some(pipe) = slot else { return inputs };
        let (lines, closed) = read_lines(pipe, max_reads);
        if closed {
            *slot = None;
        }
        for line in lines {
            if kind != PipeKind::Notify {
                console::emit_service(&name, format!("{name}: {}", console::sanitize(&line)));
                continue;
            }
            match notify::parse(&String::from_utf8_lossy(&line)) {
                Message::Ready => inputs.push(Input::Ready(index)),
                Message::Watchdog => inputs.push(Input::WatchdogPing(index)),
                Message::Status(text) => {
                    let text = console::sanitize(text.as_bytes());
                    if proc.status.as_deref() != Some(text.as_str()) {
                        log_info!("service {name} status: {text}");
                        proc.status = Some(text);
                    }
                }
                other => inputs.extend(
                    Action::requested_by(&other)
                        .filter(|_| proc.service.entry.reboot)
                        .map(|action| Input::Shutdown("service-request", action)),
                ),
            }
        }
        inputs
    }

    /// The ready line, once per boot. Committing a trial slot is the update service's
    /// decision (after its health check), not PID 1's.
    fn announce_ready(&mut self, now: Instant) {
        let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let boot_ms = boot.tv_sec.max(0) as u64 * 1000 + boot.tv_nsec.max(0) as u64 / 1_000_000;
        log_info!("ready slot={} boot_ms={boot_ms}", self.slot);
        self.idle_rss_due = Some(now + IDLE_RSS_DELAY);
        unready_boots::reached_ready(self.slot);
    }

    fn reap(&mut self, now: Instant) -> Vec<Output> {
        let mut outputs = Vec::new();
        loop {
            match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    outputs.extend(self.on_exit(pid.as_raw_nonzero().get(), status, now))
                }
                Ok(None) | Err(Errno::CHILD) => return outputs,
                Err(Errno::INTR) => {}
                Err(err) => {
                    log_error!("waitpid: {err}");
                    return outputs;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: WaitStatus, now: Instant) -> Vec<Output> {
        let index = self
            .procs
            .iter()
            .position(|p| p.running.as_ref().is_some_and(|r| r.pid == pid));
        let Some(index) = index else {
            self.orphans.total += 1;
            return Vec::new();
        };
        // The last words of a crashing service are often its most useful ones; a READY=1
        // or WATCHDOG=1 it sent just before dying no longer matters.
        for kind in [PipeKind::Stdout, PipeKind::Stderr] {
            self.read_service_pipe(index, kind, READS_AT_EXIT);
        }
        if let Some(proc) = self.procs.get_mut(index)
            && let Some(running) = proc.running.take()
        {
            for pipe in [running.stdout, running.stderr].into_iter().flatten() {
                flush_partial_line(proc.service.name(), pipe);
            }
        }
        let described = describe(status.exit_status(), status.terminating_signal());
        self.life.handle(Input::Exited(index, described), now)
    }

    /// Runs what is due; returns the action once a shutdown is complete.
    fn on_timers(&mut self, now: Instant) -> Option<Action> {
        let cgroups_empty = self.life.is_shutting_down()
            && !self
                .procs
                .iter()
                .any(|p| p.cgroup.as_ref().is_some_and(ServiceCgroup::is_populated));
        let outputs = self.life.on_timers(now, cgroups_empty);
        if let Some(action) = self.perform(outputs, now) {
            return Some(action);
        }
        if self.orphans.due(now).is_some_and(|due| due <= now) {
            self.orphans.reported = self.orphans.total;
            self.orphans.last_report = Some(now);
            log_info!("reaped orphans={}", self.orphans.total);
        }
        if self.idle_rss_due.is_some_and(|due| due <= now) {
            self.idle_rss_due = None;
            self.report_idle_rss();
        }
        // While shutting down, services are stopping on purpose; only a hung PID 1 (or a
        // hung unmount, later) should let the hardware reset the box.
        if now >= self.next_pet {
            let healthy = self.life.healthy(now);
            if healthy && let Some(watchdog) = &mut self.watchdog {
                watchdog.keepalive();
            }
            if healthy == self.marked_unhealthy {
                self.mark_health(healthy);
            }
            self.next_pet = now + PET_INTERVAL;
        }
        if now >= self.next_pet_report {
            self.next_pet_report = now + PET_REPORT_INTERVAL;
            if let Some(watchdog) = &self.watchdog {
                log_info!("watchdog max_pet_gap_ms={}", watchdog.max_gap.as_millis());
            }
        }
        console::flush();
        None
    }

    /// Tells the update service whether the box is healthy (board_support::box_health): a
    /// file on tmpfs, written only when the verdict changes. A failure is logged once per
    /// change, not retried each second.
    fn mark_health(&mut self, healthy: bool) {
        let mark = Path::new(box_health::UNHEALTHY_MARK);
        let done = match healthy {
            true => std::fs::remove_file(mark).or_else(|err| match err.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(err),
            }),
            false => mark
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(mark, b"")),
        };
        if let Err(err) = done {
            log_error!("marking the box's health in {}: {err}", mark.display());
        }
        self.marked_unhealthy = !healthy;
    }

    /// PID 1, each running service, and their sum (the bench's "all processes").
    fn report_idle_rss(&self) {
        let rss = |pid: i32| {
            proc_status::read(pid)
                .and_then(|s| proc_status::rss_kib(&s))
                .unwrap_or(0)
        };
        let (mut all, mut each) = (rss(1), String::new());
        for proc in &self.procs {
            if let Some(running) = &proc.running {
                let kib = rss(running.pid);
                all += kib;
                each.push_str(&format!(" {}_kib={kib}", proc.service.name()));
            }
        }
        log_info!("idle rss pid1_kib={} all_kib={all}{each}", rss(1));
    }
}

fn start_service(proc: &mut Proc) -> crate::error::Result<i32> {
    let entry = &proc.service.entry;
    let cgroup = match proc.cgroup.take() {
        Some(cgroup) => cgroup,
        None => ServiceCgroup::prepare(&entry.name, entry.memory_max, entry.pids_limit())?,
    };
    let procs = cgroup.open_procs();
    proc.cgroup = Some(cgroup);
    let spawned = spawn::spawn(&proc.service, &procs?)?;
    let pipe = |fd| {
        Some(Pipe {
            fd,
            lines: LineBuffer::default(),
        })
    };
    proc.running = Some(Running {
        pid: spawned.pid,
        stdout: pipe(spawned.stdout),
        stderr: pipe(spawned.stderr),
        notify: pipe(spawned.notify),
    });
    Ok(spawned.pid)
}

/// Reads what is available; returns the complete lines and whether the pipe closed.
fn read_lines(pipe: &mut Pipe, max_reads: usize) -> (Vec<Vec<u8>>, bool) {
    let mut lines = Vec::new();
    let mut buffer = [0u8; READ_CHUNK];
    for _ in 0..max_reads {
        match rustix::io::read(&pipe.fd, &mut buffer) {
            Ok(0) => {
                lines.extend(pipe.lines.finish());
                return (lines, true);
            }
            Ok(n) => lines.extend(pipe.lines.push(buffer.get(..n).unwrap_or_default())),
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => {}
            Err(_) => {
                lines.extend(pipe.lines.finish());
                return (lines, true);
            }
        }
    }
    (lines, false)
}

fn flush_partial_line(name: &str, mut pipe: Pipe) {
    if let Some(line) = pipe.lines.finish() {
        console::emit_service(name, format!("{name}: {}", console::sanitize(&line)));
    }
}

fn report_creds(name: &str, pid: i32) {
    let Some(creds) = proc_status::read(pid).and_then(|s| proc_status::credentials(&s)) else {
        return;
    };
    log_info!(
        "service {name} creds uid={} gid={} cap_eff={} cap_prm={} cap_bnd={}",
        creds.uid,
        creds.gid,
        creds.cap_eff,
        creds.cap_prm,
        creds.cap_bnd
    );
}

/// `1` for an exit code, `SIGKILL` for a signal.
pub fn describe(exit_code: Option<i32>, signal: Option<i32>) -> String {
    if let Some(code) = exit_code {
        return code.to_string();
    }
    match signal {
        Some(number) => nix::sys::signal::Signal::try_from(number)
            .map_or_else(|_| format!("signal{number}"), |s| s.as_str().to_owned()),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_codes_or_signal_names() {
        assert_eq!(describe(Some(3), None), "3");
        assert_eq!(describe(Some(0), None), "0");
        assert_eq!(describe(None, Some(9)), "SIGKILL");
        assert_eq!(describe(None, Some(15)), "SIGTERM");
    }

    #[test]
    fn orphans_are_reported_at_most_once_a_second() {
        let mut orphans = Orphans::default();
        let now = Instant::now();
        assert_eq!(orphans.due(now), None);
        orphans.total = 2;
        // The first report is due at once: a timer loop that sees `due <= now` fires it.
        assert_eq!(orphans.due(now), Some(now));
        orphans.reported = 2;
        orphans.last_report = Some(now);
        assert_eq!(orphans.due(now), None);
        orphans.total = 3;
        assert_eq!(orphans.due(now), Some(now + ORPHAN_REPORT_INTERVAL));
    }

    #[test]
    fn pipes_yield_lines_and_report_closing() {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).expect("pipe");
        let mut pipe = Pipe {
            fd: read,
            lines: LineBuffer::default(),
        };
        rustix::io::write(&write, b"one\ntw").expect("write");
        assert_eq!(read_lines(&mut pipe, 4), (vec![b"one".to_vec()], false));
        drop(write);
        assert_eq!(read_lines(&mut pipe, 4), (vec![b"tw".to_vec()], true));
    }
}
