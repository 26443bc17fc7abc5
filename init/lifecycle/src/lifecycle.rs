//! The supervisor's decisions, apart from its I/O: when each service starts (table order,
//! after the READY=1 of those in its `after`), when it restarts (backoff.rs), when it is
//! crash-looping or missed its watchdog (health.rs), when the box is ready, and how a
//! shutdown proceeds (SIGTERM, SIGKILL after a deadline, done). It takes inputs and a clock
//! value and returns outputs; supervisor.rs does the system calls and feeds the results back.
//! Nothing here reads a clock, so the unit tests drive it with a fake one.

use std::time::{Duration, Instant};

use board_support::ServiceEntry;

use crate::backoff::Backoff;
use crate::health::{RestartWindow, ServiceWatchdog};
use crate::{Action, Level};

/// Services without `ready` get their `creds` line this long after they started.
pub const CREDS_DELAY: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL at shutdown.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// After SIGKILL, how long to wait for the processes to be gone.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The I/O layer started service `.0` as asked.
    Started(usize),
    StartFailed(usize, String),
    /// Service `.0` exited; `.1` describes how (`0`, `1`, `SIGKILL`).
    Exited(usize, String),
    Ready(usize),
    WatchdogPing(usize),
    Shutdown(&'static str, Action),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Start(usize),
    ReportCreds(usize),
    /// Every `ready` service said READY=1, for the first time this boot.
    AnnounceReady,
    /// Kill whatever is left in the service's cgroup.
    KillCgroup(usize),
    Terminate(usize),
    Kill(usize),
    /// SIGKILL to every process but PID 1.
    KillEverything,
    Log(Level, String),
    /// The shutdown is complete.
    Finish(Action),
}

#[derive(Debug)]
enum Phase {
    /// Not started yet: waits for the services in its `after`.
    Waiting,
    /// Asked to start; `Started` or `StartFailed` comes next.
    Starting,
    Running(Run),
    RestartAt(Instant),
    /// Exited during the shutdown.
    Stopped,
}

#[derive(Debug)]
struct Run {
    started: Instant,
    said_ready: bool,
    creds_due: Option<Instant>,
    watchdog: ServiceWatchdog,
}

#[derive(Debug)]
struct Unit {
    name: String,
    wants_ready: bool,
    after: Vec<usize>,
    watchdog_sec: u64,
    phase: Phase,
    backoff: Backoff,
    restarts: RestartWindow,
    ever_ready: bool,
    crash_loop_reported: bool,
}

#[derive(Debug, Clone, Copy)]
struct Shutdown {
    action: Action,
    killing: bool,
    deadline: Instant,
}

#[derive(Debug)]
pub struct Lifecycle {
    units: Vec<Unit>,
    ready_announced: bool,
    shutdown: Option<Shutdown>,
}

impl Lifecycle {
    /// `after` names are resolved to indices; the table check made sure each exists earlier.
    pub fn new(entries: &[&ServiceEntry]) -> Lifecycle {
        let units = entries
            .iter()
            .map(|entry| Unit {
                name: entry.name.clone(),
                wants_ready: entry.ready,
                after: entry
                    .after
                    .iter()
                    .filter_map(|name| entries.iter().position(|e| &e.name == name))
                    .collect(),
                watchdog_sec: entry.watchdog_sec,
                phase: Phase::Waiting,
                backoff: Backoff::default(),
                restarts: RestartWindow::default(),
                ever_ready: false,
                crash_loop_reported: false,
            })
            .collect();
        Lifecycle {
            units,
            ready_announced: false,
            shutdown: None,
        }
    }

    /// The first outputs: the services that wait for nothing, and the ready line if no
    /// service has `ready`.
    pub fn boot(&mut self) -> Vec<Output> {
        let mut out = self.start_unblocked();
        self.announce_ready_if_all_ready(&mut out);
        out
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Started(index) => {
                if let Some(unit) = self.units.get_mut(index) {
                    let creds_due = (!unit.wants_ready).then(|| now + CREDS_DELAY);
                    unit.phase = Phase::Running(Run {
                        started: now,
                        said_ready: false,
                        creds_due,
                        watchdog: ServiceWatchdog::new(unit.watchdog_sec, now),
                    });
                }
            }
            Input::StartFailed(index, error) => {
                if let Some(unit) = self.units.get_mut(index) {
                    let delay = unit.backoff.on_exit(Duration::ZERO);
                    unit.phase = Phase::RestartAt(now + delay);
                    out.push(Output::Log(
                        Level::Error,
                        format!(
                            "service {} failed to start: {error}; restart_in_ms={}",
                            unit.name,
                            delay.as_millis()
                        ),
                    ));
                }
            }
            Input::Exited(index, status) => self.on_exit(index, &status, now, &mut out),
            Input::Ready(index) => self.on_ready(index, &mut out),
            Input::WatchdogPing(index) => {
                if let Some(Unit {
                    phase: Phase::Running(run),
                    ..
                }) = self.units.get_mut(index)
                {
                    run.watchdog.ping(now);
                }
            }
            Input::Shutdown(reason, action) => self.begin_shutdown(reason, action, now, &mut out),
        }
        out
    }

    fn on_exit(&mut self, index: usize, status: &str, now: Instant, out: &mut Vec<Output>) {
        let shutting_down = self.shutdown.is_some();
        let Some(unit) = self.units.get_mut(index) else {
            return;
        };
        let Phase::Running(run) = &unit.phase else {
            return;
        };
        // Whatever it forked dies with it, so a restart starts from nothing.
        out.push(Output::KillCgroup(index));
        // Exits at shutdown are the SIGTERM we sent; only other ends are errors.
        let level = if status == "0" || shutting_down {
            Level::Info
        } else {
            Level::Error
        };
        let delay = if shutting_down {
            unit.phase = Phase::Stopped;
            Duration::ZERO
        } else {
            let delay = unit
                .backoff
                .on_exit(now.saturating_duration_since(run.started));
            unit.phase = Phase::RestartAt(now + delay);
            delay
        };
        out.push(Output::Log(
            level,
            format!(
                "service {} exited status={status} restart_in_ms={}",
                unit.name,
                delay.as_millis()
            ),
        ));
    }

    fn on_ready(&mut self, index: usize, out: &mut Vec<Output>) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(unit) = self.units.get_mut(index) else {
            return;
        };
        let Phase::Running(run) = &mut unit.phase else {
            return;
        };
        if run.said_ready {
            return;
        }
        run.said_ready = true;
        if !unit.wants_ready {
            return;
        }
        run.creds_due = None;
        unit.ever_ready = true;
        out.push(Output::ReportCreds(index));
        let started = self.start_unblocked();
        out.extend(started);
        self.announce_ready_if_all_ready(out);
    }

    /// Each waiting service whose `after` services all said READY=1, in table order.
    fn start_unblocked(&mut self) -> Vec<Output> {
        if self.shutdown.is_some() {
            return Vec::new();
        }
        let ready: Vec<bool> = self.units.iter().map(|u| u.ever_ready).collect();
        let mut out = Vec::new();
        for (index, unit) in self.units.iter_mut().enumerate() {
            let unblocked = unit
                .after
                .iter()
                .all(|&i| ready.get(i).copied().unwrap_or(false));
            if matches!(unit.phase, Phase::Waiting) && unblocked {
                unit.phase = Phase::Starting;
                out.push(Output::Start(index));
            }
        }
        out
    }

    /// A degraded boot holds services, so the box never announces ready (degraded.rs).
    pub fn never_ready(&mut self) {
        self.ready_announced = true;
    }

    fn announce_ready_if_all_ready(&mut self, out: &mut Vec<Output>) {
        if self.ready_announced || self.shutdown.is_some() {
            return;
        }
        if self.units.iter().all(|u| !u.wants_ready || u.ever_ready) {
            self.ready_announced = true;
            out.push(Output::AnnounceReady);
        }
    }

    fn begin_shutdown(
        &mut self,
        reason: &str,
        action: Action,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if self.shutdown.is_some() {
            return;
        }
        out.push(Output::Log(
            Level::Info,
            format!("shutdown reason={reason} action={}", action.name()),
        ));
        for (index, unit) in self.units.iter_mut().enumerate() {
            match unit.phase {
                Phase::Running(_) => out.push(Output::Terminate(index)),
                _ => unit.phase = Phase::Stopped,
            }
        }
        self.shutdown = Some(Shutdown {
            action,
            killing: false,
            deadline: now + STOP_TIMEOUT,
        });
    }

    /// What the clock makes due at `now`: restarts, creds lines, watchdog misses, crash-loop
    /// lines, and the shutdown's steps. `cgroups_empty` tells a shutdown whether every
    /// service cgroup is empty (the I/O layer only needs to look while shutting down).
    pub fn on_timers(&mut self, now: Instant, cgroups_empty: bool) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(shutdown) = self.shutdown {
            self.advance_shutdown(shutdown, now, cgroups_empty, &mut out);
            return out;
        }
        for (index, unit) in self.units.iter_mut().enumerate() {
            match &mut unit.phase {
                Phase::RestartAt(at) if *at <= now => {
                    unit.restarts.record(now);
                    out.push(Output::Start(index));
                    unit.phase = Phase::Starting;
                }
                Phase::Running(run) => {
                    if run.creds_due.is_some_and(|due| due <= now) {
                        run.creds_due = None;
                        out.push(Output::ReportCreds(index));
                    }
                    if run.watchdog.overdue(now) && !run.watchdog.miss_reported {
                        run.watchdog.miss_reported = true;
                        out.push(Output::Log(
                            Level::Error,
                            format!("service {} watchdog missed", unit.name),
                        ));
                    }
                }
                _ => {}
            }
            if unit.restarts.too_many(now) {
                if !unit.crash_loop_reported {
                    unit.crash_loop_reported = true;
                    out.push(Output::Log(
                        Level::Error,
                        format!(
                            "service {} restarted {} times in 5 minutes; the box is unhealthy",
                            unit.name,
                            unit.restarts.count(now)
                        ),
                    ));
                }
            } else {
                unit.crash_loop_reported = false;
            }
        }
        out
    }

    fn advance_shutdown(
        &mut self,
        shutdown: Shutdown,
        now: Instant,
        cgroups_empty: bool,
        out: &mut Vec<Output>,
    ) {
        let all_exited = self
            .units
            .iter()
            .all(|u| !matches!(u.phase, Phase::Running(_)));
        if (all_exited && cgroups_empty) || (shutdown.killing && now >= shutdown.deadline) {
            out.push(Output::Finish(shutdown.action));
            return;
        }
        if shutdown.killing || now < shutdown.deadline {
            return;
        }
        for (index, unit) in self.units.iter().enumerate() {
            out.push(Output::KillCgroup(index));
            if matches!(unit.phase, Phase::Running(_)) {
                out.push(Output::Log(
                    Level::Error,
                    format!(
                        "service {} did not stop in {} s; killing it",
                        unit.name,
                        STOP_TIMEOUT.as_secs()
                    ),
                ));
                out.push(Output::Kill(index));
            }
        }
        // Anything outside the service cgroups too; PID 1 itself is exempt.
        out.push(Output::KillEverything);
        self.shutdown = Some(Shutdown {
            killing: true,
            deadline: now + KILL_GRACE,
            ..shutdown
        });
    }

    /// Healthy: no running service overdue on its watchdog, none crash-looping. PID 1 pets
    /// the hardware watchdog only then (and always while shutting down).
    pub fn healthy(&mut self, now: Instant) -> bool {
        if self.shutdown.is_some() {
            return true;
        }
        self.units.iter_mut().all(|unit| {
            let overdue = matches!(&unit.phase, Phase::Running(run) if run.watchdog.overdue(now));
            !overdue && !unit.restarts.too_many(now)
        })
    }

    /// The next moment something here falls due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(shutdown) = self.shutdown {
            return Some(shutdown.deadline);
        }
        let mut next: Option<Instant> = None;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for unit in &self.units {
            // A crash loop can end when its oldest restart leaves the window.
            consider(unit.restarts.next_change());
            match &unit.phase {
                Phase::RestartAt(at) => consider(Some(*at)),
                Phase::Running(run) => {
                    consider(run.creds_due);
                    if !run.watchdog.miss_reported {
                        consider(
                            run.watchdog
                                .deadline()
                                .and_then(|d| d.checked_add(Duration::from_millis(1))),
                        );
                    }
                }
                Phase::Waiting | Phase::Starting | Phase::Stopped => {}
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    fn entry(name: &str, ready: bool, watchdog_sec: u64, after: &[&str]) -> ServiceEntry {
        ServiceEntry {
            name: name.to_owned(),
            exec: vec!["/bin/x".to_owned()],
            uid: 1,
            gid: 1,
            memory_max: 1 << 22,
            pids_max: None,
            capabilities: vec![],
            ready,
            watchdog_sec,
            state_dir: false,
            runtime_dir: false,
            after: after.iter().map(|s| (*s).to_owned()).collect(),
            network: None,
            owner_settings: false,
            boot_control: false,
            reboot: false,
            tty: None,
        }
    }

    fn lifecycle(entries: &[ServiceEntry]) -> Lifecycle {
        Lifecycle::new(&entries.iter().collect::<Vec<_>>())
    }

    /// Boots and reports every asked start as done at `t0`.
    fn booted(entries: &[ServiceEntry], t0: Instant) -> Lifecycle {
        let mut life = lifecycle(entries);
        for output in life.boot() {
            if let Output::Start(i) = output {
                assert!(life.handle(Input::Started(i), t0).is_empty());
            }
        }
        life
    }

    fn log(level: Level, text: &str) -> Output {
        Output::Log(level, text.to_owned())
    }

    #[test]
    fn boot_starts_in_table_order_and_after_waits_for_ready() {
        let t0 = Instant::now();
        let mut life = lifecycle(&[
            entry("logger", true, 0, &[]),
            entry("health", false, 0, &["logger"]),
            entry("marker", false, 0, &[]),
        ]);
        assert_eq!(life.boot(), [Output::Start(0), Output::Start(2)]);
        life.handle(Input::Started(0), t0);
        life.handle(Input::Started(2), t0);
        assert_eq!(
            life.handle(Input::Ready(0), t0),
            [
                Output::ReportCreds(0),
                Output::Start(1),
                Output::AnnounceReady
            ]
        );
        // A second READY=1 changes nothing.
        assert!(life.handle(Input::Ready(0), t0).is_empty());
    }

    #[test]
    fn a_table_without_ready_services_is_ready_at_once() {
        let mut life = lifecycle(&[entry("a", false, 0, &[])]);
        assert_eq!(life.boot(), [Output::Start(0), Output::AnnounceReady]);
    }

    #[test]
    fn ready_is_announced_once_when_every_ready_service_said_so() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", true, 0, &[]), entry("b", true, 0, &[])], t0);
        assert_eq!(life.handle(Input::Ready(0), t0), [Output::ReportCreds(0)]);
        assert_eq!(
            life.handle(Input::Ready(1), t0),
            [Output::ReportCreds(1), Output::AnnounceReady]
        );
        // b restarts and says READY=1 again: creds again, no second ready line.
        life.handle(Input::Exited(1, "1".into()), t0);
        assert_eq!(life.on_timers(t0 + S, true), [Output::Start(1)]);
        life.handle(Input::Started(1), t0 + S);
        assert_eq!(
            life.handle(Input::Ready(1), t0 + S),
            [Output::ReportCreds(1)]
        );
    }

    #[test]
    fn services_without_ready_get_creds_a_second_after_start() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", false, 0, &[])], t0);
        assert_eq!(life.next_deadline(), Some(t0 + CREDS_DELAY));
        assert!(life.on_timers(t0 + CREDS_DELAY - MS, true).is_empty());
        assert_eq!(
            life.on_timers(t0 + CREDS_DELAY, true),
            [Output::ReportCreds(0)]
        );
        assert!(life.on_timers(t0 + 2 * CREDS_DELAY, true).is_empty());
        // Its READY=1 means nothing: it has no `ready`.
        assert!(life.handle(Input::Ready(0), t0).is_empty());
        assert_eq!(life.next_deadline(), None);
    }

    #[test]
    fn an_exit_restarts_after_a_doubling_backoff() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", true, 0, &[])], t0);
        assert_eq!(
            life.handle(Input::Exited(0, "1".into()), t0 + S),
            [
                Output::KillCgroup(0),
                log(Level::Error, "service a exited status=1 restart_in_ms=1000")
            ]
        );
        assert_eq!(life.next_deadline(), Some(t0 + 2 * S));
        assert!(life.on_timers(t0 + 2 * S - MS, true).is_empty());
        assert_eq!(life.on_timers(t0 + 2 * S, true), [Output::Start(0)]);
        // Asked to start: nothing more is due until it reports back.
        assert!(life.on_timers(t0 + 3 * S, true).is_empty());
        life.handle(Input::Started(0), t0 + 2 * S);
        assert_eq!(
            life.handle(Input::Exited(0, "0".into()), t0 + 2 * S),
            [
                Output::KillCgroup(0),
                log(Level::Info, "service a exited status=0 restart_in_ms=2000")
            ]
        );
        // An exit of something that is not running (a stray report) is ignored.
        assert!(life.handle(Input::Exited(0, "0".into()), t0).is_empty());
    }

    #[test]
    fn a_failed_start_is_retried_with_backoff() {
        let t0 = Instant::now();
        let mut life = lifecycle(&[entry("a", true, 0, &[])]);
        assert_eq!(life.boot(), [Output::Start(0)]);
        assert_eq!(
            life.handle(Input::StartFailed(0, "no such file".into()), t0),
            [log(
                Level::Error,
                "service a failed to start: no such file; restart_in_ms=1000"
            )]
        );
        assert_eq!(life.on_timers(t0 + S, true), [Output::Start(0)]);
    }

    #[test]
    fn six_restarts_in_five_minutes_make_the_box_unhealthy_until_they_age_out() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", false, 0, &[])], t0);
        let mut now = t0;
        let mut lines = Vec::new();
        for _ in 0..6 {
            life.handle(Input::Exited(0, "1".into()), now);
            now = life.next_deadline().expect("restart due");
            let out = life.on_timers(now, true);
            lines.extend(out.iter().filter(|o| matches!(o, Output::Log(..))).cloned());
            assert!(out.contains(&Output::Start(0)));
            life.handle(Input::Started(0), now);
        }
        assert!(!life.healthy(now));
        assert_eq!(
            lines,
            [log(
                Level::Error,
                "service a restarted 6 times in 5 minutes; the box is unhealthy"
            )]
        );
        // Reported once, however often the timers run.
        assert!(life.on_timers(now + MS, true).is_empty());
        let later = now + crate::health::RESTART_WINDOW;
        assert!(life.healthy(later));
    }

    #[test]
    fn a_missed_service_watchdog_makes_the_box_unhealthy_until_the_next_ping() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", false, 5, &[])], t0);
        life.on_timers(t0 + CREDS_DELAY, true);
        assert_eq!(life.next_deadline(), Some(t0 + 5 * S + MS));
        assert!(life.healthy(t0 + 5 * S));
        assert!(life.on_timers(t0 + 5 * S, true).is_empty());
        let late = t0 + 5 * S + MS;
        assert!(!life.healthy(late));
        assert_eq!(
            life.on_timers(late, true),
            [log(Level::Error, "service a watchdog missed")]
        );
        assert!(life.on_timers(late + S, true).is_empty());
        life.handle(Input::WatchdogPing(0), late + S);
        assert!(life.healthy(late + S));
        assert_eq!(life.next_deadline(), Some(late + 6 * S + MS));
    }

    #[test]
    fn the_longest_watchdog_neither_panics_nor_fires_early() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", true, 3600, &[])], t0);
        assert!(life.healthy(t0 + Duration::from_secs(3600)));
        assert!(!life.healthy(t0 + Duration::from_secs(3601)));
    }

    #[test]
    fn shutdown_terminates_and_finishes_once_everything_is_gone() {
        let t0 = Instant::now();
        let mut life = booted(
            &[
                entry("a", true, 0, &[]),
                entry("b", false, 0, &["a"]),
                entry("c", false, 0, &[]),
            ],
            t0,
        );
        life.handle(Input::Exited(2, "1".into()), t0);
        assert_eq!(
            life.handle(Input::Shutdown("signal", Action::Reboot), t0),
            [
                log(Level::Info, "shutdown reason=signal action=reboot"),
                Output::Terminate(0)
            ]
        );
        assert!(life.is_shutting_down());
        assert!(
            life.handle(Input::Shutdown("power-button", Action::PowerOff), t0)
                .is_empty()
        );
        // Nothing restarts or starts any more: not c (restart due), not b (its `after` says READY).
        assert!(life.handle(Input::Ready(0), t0).is_empty());
        assert!(life.on_timers(t0 + S, false).is_empty());
        assert_eq!(
            life.handle(Input::Exited(0, "SIGTERM".into()), t0 + S),
            [
                Output::KillCgroup(0),
                log(
                    Level::Info,
                    "service a exited status=SIGTERM restart_in_ms=0"
                )
            ]
        );
        // Exited, but a process is left in a cgroup: wait.
        assert!(life.on_timers(t0 + S, false).is_empty());
        assert_eq!(
            life.on_timers(t0 + S, true),
            [Output::Finish(Action::Reboot)]
        );
    }

    #[test]
    fn shutdown_kills_after_its_deadline_and_gives_up_after_the_grace() {
        let t0 = Instant::now();
        let mut life = booted(&[entry("a", false, 0, &[]), entry("b", false, 0, &[])], t0);
        life.handle(Input::Exited(1, "1".into()), t0);
        life.handle(Input::Shutdown("signal", Action::PowerOff), t0);
        assert_eq!(life.next_deadline(), Some(t0 + STOP_TIMEOUT));
        assert!(life.on_timers(t0 + STOP_TIMEOUT - MS, false).is_empty());
        assert_eq!(
            life.on_timers(t0 + STOP_TIMEOUT, false),
            [
                Output::KillCgroup(0),
                log(Level::Error, "service a did not stop in 10 s; killing it"),
                Output::Kill(0),
                Output::KillCgroup(1),
                Output::KillEverything
            ]
        );
        let end = t0 + STOP_TIMEOUT + KILL_GRACE;
        assert_eq!(life.next_deadline(), Some(end));
        assert!(life.on_timers(end - MS, false).is_empty());
        assert_eq!(
            life.on_timers(end, false),
            [Output::Finish(Action::PowerOff)]
        );
        assert!(
            life.healthy(end),
            "a shutdown keeps the hardware watchdog petted"
        );
    }
}
