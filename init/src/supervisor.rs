//! PID 1's event loop: one thread, one `poll` over the signalfd, the power buttons and every
//! service's stdout, stderr and notify pipes; the poll timeout drives the timers (restarts,
//! the `creds` line, service watchdogs, petting the hardware watchdog, shutdown deadlines).
//!
//! Children are reaped only here, with waitpid(-1, WNOHANG) after SIGCHLD: std's
//! `Child::wait` would race this global reaper for the same pids.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use board_support::Slot;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, WaitStatus};

use crate::backoff::Backoff;
use crate::cgroup::ServiceCgroup;
use crate::console::{self, Level};
use crate::health::{RestartWindow, ServiceWatchdog};
use crate::notify::{self, LineBuffer, Message};
use crate::service_table::Service;
use crate::signals::{Action, Event, Signals};
use crate::watchdog::Watchdog;
use crate::{power_button, proc_status, slot_commit, spawn};

/// How often the hardware watchdog is petted while healthy.
const PET_INTERVAL: Duration = Duration::from_secs(1);
/// How often PID 1 says the longest gap between two pets so far.
const PET_REPORT_INTERVAL: Duration = Duration::from_secs(30);
/// Services without `ready` get their `creds` line this long after they started.
const CREDS_DELAY: Duration = Duration::from_secs(1);
const IDLE_RSS_DELAY: Duration = Duration::from_secs(3);
const ORPHAN_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL at shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// After SIGKILL, how long to wait for the processes to be gone.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// While shutting down, cgroups are checked for leftover processes this often.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 4096;
/// Reads per pipe per wakeup, so one chatty service cannot starve the others.
const READS_PER_WAKEUP: usize = 4;
/// Reads when a service has exited and its pipes are emptied for the last time.
const READS_AT_EXIT: usize = 64;

pub struct Supervisor {
    services: Vec<ServiceState>,
    signals: Signals,
    power_buttons: Vec<Option<OwnedFd>>,
    watchdog: Option<Watchdog>,
    slot: Slot,
    esp_partuuid: String,
    ready_announced: bool,
    idle_rss_due: Option<Instant>,
    orphans: Orphans,
    shutdown: Option<Shutdown>,
    next_pet: Instant,
    next_pet_report: Instant,
    /// Polled for POLLOUT while lines wait for the serial console.
    console: Option<OwnedFd>,
}

/// What the loop ends with: the action to take, and the watchdog to keep petting meanwhile.
pub struct Finished {
    pub action: Action,
    pub watchdog: Option<Watchdog>,
}

struct ServiceState {
    service: Service,
    cgroup: Option<ServiceCgroup>,
    running: Option<Running>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    restarts: RestartWindow,
    ever_ready: bool,
    crash_loop_reported: bool,
    status: Option<String>,
    /// Not started yet: waits for the services in its `after` to say READY=1.
    waiting: bool,
}

struct Running {
    pid: i32,
    started: Instant,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
    notify: Option<Pipe>,
    said_ready: bool,
    creds_due: Option<Instant>,
    watchdog: ServiceWatchdog,
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

struct Shutdown {
    action: Action,
    killing: bool,
    deadline: Instant,
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
        esp_partuuid: String,
    ) -> Supervisor {
        let services = services
            .into_iter()
            .map(|service| ServiceState {
                service,
                cgroup: None,
                running: None,
                backoff: Backoff::default(),
                restart_at: None,
                restarts: RestartWindow::default(),
                ever_ready: false,
                crash_loop_reported: false,
                status: None,
                waiting: true,
            })
            .collect();
        Supervisor {
            services,
            signals,
            power_buttons: power_buttons.into_iter().map(Some).collect(),
            watchdog,
            slot,
            esp_partuuid,
            ready_announced: false,
            idle_rss_due: None,
            orphans: Orphans::default(),
            shutdown: None,
            next_pet: Instant::now(),
            next_pet_report: Instant::now() + PET_REPORT_INTERVAL,
            console: console::poll_handle(),
        }
    }

    /// Starts the services in table order and runs until a shutdown has stopped them all.
    pub fn run(mut self) -> Finished {
        let now = Instant::now();
        self.start_unblocked(now);
        self.announce_ready_if_all_ready(now);
        loop {
            let now = Instant::now();
            if let Some(action) = self.on_timers(now) {
                return Finished {
                    action,
                    watchdog: self.watchdog,
                };
            }
            let timeout = self.poll_timeout(now);
            for (source, events) in self.poll(timeout) {
                self.on_readable(source, events);
            }
        }
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
        for (index, state) in self.services.iter().enumerate() {
            let Some(running) = &state.running else {
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
        let mut next = self.next_pet;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = next.min(at);
            }
        };
        for state in &self.services {
            consider(state.restart_at);
            // A crash loop can end when its oldest restart leaves the window.
            consider(state.restarts.next_change());
            if let Some(running) = &state.running {
                consider(running.creds_due);
                if !running.watchdog.miss_reported {
                    consider(
                        running
                            .watchdog
                            .deadline()
                            .map(|d| d + Duration::from_millis(1)),
                    );
                }
            }
        }
        consider(self.orphans.due(now));
        consider(self.idle_rss_due);
        let cap = match &self.shutdown {
            Some(shutdown) => {
                consider(Some(shutdown.deadline));
                SHUTDOWN_POLL
            }
            None => PET_INTERVAL,
        };
        next.saturating_duration_since(now).min(cap)
    }

    fn on_readable(&mut self, source: Source, events: PollFlags) {
        let now = Instant::now();
        match source {
            Source::Signals => {
                for event in self.signals.drain() {
                    match event {
                        Event::ChildExited => self.reap(now),
                        Event::Shutdown { reason, action } => {
                            self.begin_shutdown(reason, action, now)
                        }
                    }
                }
            }
            Source::Console => console::flush(),
            Source::PowerButton(index) => self.read_power_button(index, events, now),
            Source::Pipe(index, kind) => self.read_service_pipe(index, kind, READS_PER_WAKEUP, now),
        }
    }

    fn read_power_button(&mut self, index: usize, events: PollFlags, now: Instant) {
        let Some(slot) = self.power_buttons.get_mut(index) else {
            return;
        };
        let Some(fd) = slot else { return };
        let mut pressed = false;
        let mut broken = events.intersects(PollFlags::ERR | PollFlags::NVAL);
        let mut buffer = [0u8; power_button::INPUT_EVENT_SIZE * 16];
        loop {
            match rustix::io::read(&*fd, &mut buffer) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    pressed |= power_button::contains_press(buffer.get(..n).unwrap_or_default())
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
        if pressed {
            self.begin_shutdown("power-button", Action::PowerOff, now);
        }
    }

    fn read_service_pipe(&mut self, index: usize, kind: PipeKind, max_reads: usize, now: Instant) {
        let Some(state) = self.services.get_mut(index) else {
            return;
        };
        let name = state.service.name().to_owned();
        let Some(running) = &mut state.running else {
            return;
        };
        let slot = running.pipe(kind);
        let Some(pipe) = slot else { return };
        let (lines, closed) = read_lines(pipe, max_reads);
        if closed {
            *slot = None;
        }
        for line in lines {
            match kind {
                PipeKind::Stdout | PipeKind::Stderr => {
                    console::emit_service(&name, format!("{name}: {}", console::sanitize(&line)));
                }
                PipeKind::Notify => {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    self.on_notify(index, notify::parse(&text), now);
                }
            }
        }
    }

    fn on_notify(&mut self, index: usize, message: Message, now: Instant) {
        let Some(state) = self.services.get_mut(index) else {
            return;
        };
        let Some(running) = &mut state.running else {
            return;
        };
        let name = state.service.name();
        match message {
            Message::Ready => {
                if running.said_ready {
                    return;
                }
                running.said_ready = true;
                if !state.service.entry.ready {
                    return;
                }
                running.creds_due = None;
                report_creds(name, running.pid);
                state.ever_ready = true;
                self.start_unblocked(now);
                self.announce_ready_if_all_ready(now);
            }
            Message::Watchdog => running.watchdog.ping(now),
            Message::Status(text) => {
                let text = console::sanitize(text.as_bytes());
                if state.status.as_deref() != Some(text.as_str()) {
                    log_info!("service {name} status: {text}");
                    state.status = Some(text);
                }
            }
            Message::Unknown(_) => {}
        }
    }

    /// The ready line, once per boot, when every `ready = true` service said READY=1; then
    /// the booted slot is committed.
    fn announce_ready_if_all_ready(&mut self, now: Instant) {
        if self.ready_announced || self.shutdown.is_some() {
            return;
        }
        if !self
            .services
            .iter()
            .all(|s| !s.service.entry.ready || s.ever_ready)
        {
            return;
        }
        self.ready_announced = true;
        let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let boot_ms = boot.tv_sec.max(0) as u64 * 1000 + boot.tv_nsec.max(0) as u64 / 1_000_000;
        log_info!("ready slot={} boot_ms={boot_ms}", self.slot);
        self.idle_rss_due = Some(now + IDLE_RSS_DELAY);
        slot_commit::commit_if_trial(&self.esp_partuuid, self.slot);
    }

    fn reap(&mut self, now: Instant) {
        loop {
            match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => self.on_exit(pid.as_raw_nonzero().get(), status, now),
                Ok(None) | Err(Errno::CHILD) => return,
                Err(Errno::INTR) => {}
                Err(err) => {
                    log_error!("waitpid: {err}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: WaitStatus, now: Instant) {
        let index = self
            .services
            .iter()
            .position(|s| s.running.as_ref().is_some_and(|r| r.pid == pid));
        let Some(index) = index else {
            self.orphans.total += 1;
            return;
        };
        // The last words of a crashing service are often its most useful ones.
        for kind in [PipeKind::Stdout, PipeKind::Stderr] {
            self.read_service_pipe(index, kind, READS_AT_EXIT, now);
        }
        let shutting_down = self.shutdown.is_some();
        let Some(state) = self.services.get_mut(index) else {
            return;
        };
        let Some(running) = state.running.take() else {
            return;
        };
        for pipe in [running.stdout, running.stderr].into_iter().flatten() {
            flush_partial_line(state.service.name(), pipe);
        }
        // Whatever it forked dies with it, so a restart starts from nothing.
        if let Some(cgroup) = &state.cgroup {
            cgroup.kill_all();
        }
        let name = state.service.name().to_owned();
        let described = describe(status.exit_status(), status.terminating_signal());
        // Exits at shutdown are the SIGTERM we sent; only other ends are errors.
        let level = if status.exit_status() == Some(0) || shutting_down {
            Level::Info
        } else {
            Level::Error
        };
        if shutting_down {
            emit(
                level,
                &format!("service {name} exited status={described} restart_in_ms=0"),
            );
            return;
        }
        let delay = state
            .backoff
            .on_exit(now.saturating_duration_since(running.started));
        state.restart_at = Some(now + delay);
        emit(
            level,
            &format!(
                "service {name} exited status={described} restart_in_ms={}",
                delay.as_millis()
            ),
        );
    }

    /// Starts, in table order, each waiting service whose `after` services all said READY=1.
    fn start_unblocked(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        for index in 0..self.services.len() {
            let unblocked = self.services.get(index).is_some_and(|state| {
                state.waiting
                    && state.service.entry.after.iter().all(|name| {
                        self.services
                            .iter()
                            .any(|s| s.service.name() == name && s.ever_ready)
                    })
            });
            if unblocked {
                if let Some(state) = self.services.get_mut(index) {
                    state.waiting = false;
                }
                self.start(index, now);
            }
        }
    }

    fn start(&mut self, index: usize, now: Instant) {
        let Some(state) = self.services.get_mut(index) else {
            return;
        };
        state.restart_at = None;
        let name = state.service.name().to_owned();
        match start_service(state, now) {
            Ok(pid) => {
                let entry = &state.service.entry;
                log_info!(
                    "service {name} started pid={pid} uid={} gid={}",
                    entry.uid,
                    entry.gid
                );
            }
            Err(err) => {
                let delay = state.backoff.on_exit(Duration::ZERO);
                state.restart_at = Some(now + delay);
                log_error!(
                    "service {name} failed to start: {err}; restart_in_ms={}",
                    delay.as_millis()
                );
            }
        }
    }

    /// Runs what is due; returns the action once a shutdown is complete.
    fn on_timers(&mut self, now: Instant) -> Option<Action> {
        if let Some(action) = self.advance_shutdown(now) {
            return Some(action);
        }
        if self.shutdown.is_none() {
            let due: Vec<usize> = (0..self.services.len())
                .filter(|&i| {
                    self.services
                        .get(i)
                        .and_then(|s| s.restart_at)
                        .is_some_and(|at| at <= now)
                })
                .collect();
            for index in due {
                if let Some(state) = self.services.get_mut(index) {
                    state.restarts.record(now);
                }
                self.start(index, now);
            }
        }

        let mut healthy = true;
        for state in &mut self.services {
            let name = state.service.name();
            if let Some(running) = &mut state.running {
                if running.creds_due.is_some_and(|due| due <= now) {
                    running.creds_due = None;
                    report_creds(name, running.pid);
                }
                if running.watchdog.overdue(now) {
                    healthy = false;
                    if !running.watchdog.miss_reported {
                        running.watchdog.miss_reported = true;
                        log_error!("service {name} watchdog missed");
                    }
                }
            }
            if state.restarts.too_many(now) {
                healthy = false;
                if !state.crash_loop_reported {
                    state.crash_loop_reported = true;
                    log_error!(
                        "service {name} restarted {} times in 5 minutes; the box is unhealthy",
                        state.restarts.count(now)
                    );
                }
            } else {
                state.crash_loop_reported = false;
            }
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
            if (healthy || self.shutdown.is_some())
                && let Some(watchdog) = &mut self.watchdog
            {
                watchdog.keepalive();
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

    fn report_idle_rss(&self) {
        let rss = |pid: i32| {
            proc_status::read(pid)
                .and_then(|s| proc_status::rss_kib(&s))
                .unwrap_or(0)
        };
        let agentd = self
            .services
            .iter()
            .find(|s| s.service.name() == "agentd")
            .and_then(|s| s.running.as_ref())
            .map_or(0, |r| rss(r.pid));
        log_info!("idle rss pid1_kib={} agentd_kib={agentd}", rss(1));
    }

    fn begin_shutdown(&mut self, reason: &str, action: Action, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        log_info!("shutdown reason={reason} action={}", action.name());
        for state in &mut self.services {
            state.restart_at = None;
            if let Some(running) = &state.running {
                signal(running.pid, rustix::process::Signal::TERM);
            }
        }
        self.shutdown = Some(Shutdown {
            action,
            killing: false,
            deadline: now + STOP_TIMEOUT,
        });
    }

    fn advance_shutdown(&mut self, now: Instant) -> Option<Action> {
        let shutdown = self.shutdown.as_ref()?;
        let (action, killing, deadline) = (shutdown.action, shutdown.killing, shutdown.deadline);
        let everything_stopped = self.services.iter().all(|s| {
            s.running.is_none() && !s.cgroup.as_ref().is_some_and(ServiceCgroup::is_populated)
        });
        if everything_stopped || (killing && now >= deadline) {
            return Some(action);
        }
        if !killing && now >= deadline {
            for state in &self.services {
                if let Some(cgroup) = &state.cgroup {
                    cgroup.kill_all();
                }
                if let Some(running) = &state.running {
                    log_error!(
                        "service {} did not stop in {} s; killing it",
                        state.service.name(),
                        STOP_TIMEOUT.as_secs()
                    );
                    signal(running.pid, rustix::process::Signal::KILL);
                }
            }
            // Anything outside the service cgroups too; PID 1 itself is exempt.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(-1),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.shutdown = Some(Shutdown {
                action,
                killing: true,
                deadline: now + KILL_GRACE,
            });
        }
        None
    }
}

fn start_service(state: &mut ServiceState, now: Instant) -> crate::error::Result<i32> {
    let entry = &state.service.entry;
    let cgroup = match state.cgroup.take() {
        Some(cgroup) => cgroup,
        None => ServiceCgroup::prepare(&entry.name, entry.memory_max, entry.pids_limit())?,
    };
    let procs = cgroup.open_procs();
    state.cgroup = Some(cgroup);
    let spawned = spawn::spawn(&state.service, &procs?)?;
    let creds_due = (!state.service.entry.ready).then(|| now + CREDS_DELAY);
    let pipe = |fd| {
        Some(Pipe {
            fd,
            lines: LineBuffer::default(),
        })
    };
    state.running = Some(Running {
        pid: spawned.pid,
        started: now,
        stdout: pipe(spawned.stdout),
        stderr: pipe(spawned.stderr),
        notify: pipe(spawned.notify),
        said_ready: false,
        creds_due,
        watchdog: ServiceWatchdog::new(state.service.entry.watchdog_sec, now),
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

fn signal(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn emit(level: Level, message: &str) {
    console::emit(level, &format!("carapace: {message}"));
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
