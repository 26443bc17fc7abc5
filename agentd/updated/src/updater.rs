//! The update service's decisions: checking, installing into the other slot, rebooting into it
//! when the owner agrees or at the quiet hour, and judging the trial boot that follows.
//!
//! One job (a check or an install) runs at a time. The state on /data and the little the
//! status shows live behind one lock that is never held across an await.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use board_support::notify::Message;
use board_support::notify_fd::NotifyFd;
use board_support::update_config::UpdateConfig;
use board_support::update_control::Status;
use board_support::{BootControl, BootParams, PiTrialStart};
use carapace_update::{Trust, Version, plan};

use crate::boot::SlotBoot;
use crate::check::{self, CheckInput, Outcome};
use crate::error::{Error, Result};
use crate::install::{self, Slots};
use crate::repository::{Repository, Throttle};
use crate::state::{State, Trial};
use crate::trial::{self, Health, Verdict};

/// Where chunks wait between download and slot write, under the state directory.
const DOWNLOADS: &str = "downloads";
/// How often a trial boot looks at agentd's latest report.
const TRIAL_POLL: Duration = Duration::from_secs(2);
/// How often a trial waiting for the network probes the update server.
const NETWORK_PROBE: Duration = Duration::from_secs(60);

pub struct Updater {
    pub config: UpdateConfig,
    pub board: String,
    pub running: Version,
    pub params: BootParams,
    /// How a Raspberry Pi image starts a trial (image.toml); `None` on UEFI boards.
    pub pi_trial_start: Option<PiTrialStart>,
    pub state_dir: PathBuf,
    /// This boot's id: a trial armed in this boot has not started yet.
    pub boot_id: String,
    /// What the rollout wave is drawn from (32 random bytes kept on /data).
    pub wave_id: Vec<u8>,
    pub repo: Repository,
    pub notify: Option<NotifyFd>,
    /// Deadline for agentd's healthy report in a trial boot.
    pub health_deadline: Duration,
    shared: Mutex<Shared>,
    /// The trust, held by the one job that runs.
    job: Arc<tokio::sync::Mutex<Trust>>,
}

struct Shared {
    state: State,
    activity: String,
    available: Option<String>,
    health: Option<Health>,
    on_trial: bool,
}

impl Updater {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: UpdateConfig,
        board: String,
        running: Version,
        params: BootParams,
        pi_trial_start: Option<PiTrialStart>,
        state_dir: PathBuf,
        boot_id: String,
        wave_id: Vec<u8>,
        repo: Repository,
        notify: Option<NotifyFd>,
        trust: Trust,
        state: State,
    ) -> Updater {
        Updater {
            config,
            board,
            running,
            params,
            pi_trial_start,
            state_dir,
            boot_id,
            wave_id,
            repo,
            notify,
            health_deadline: trial::HEALTH_DEADLINE,
            shared: Mutex::new(Shared {
                state,
                activity: "idle".into(),
                available: None,
                health: None,
                on_trial: false,
            }),
            job: Arc::new(tokio::sync::Mutex::new(trust)),
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave the fields half-written in a way that
        // matters more than stopping: the state is saved whole after each change.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn boot_control(&self) -> SlotBoot {
        SlotBoot::new(self.params.slot, self.pi_trial_start)
    }

    /// Changes the state and writes it; a failed write is said on the console (the step
    /// itself is on the ESP already, which is what decides the next boot).
    fn change(&self, change: impl FnOnce(&mut State)) {
        let mut shared = self.shared();
        change(&mut shared.state);
        if let Err(err) = shared.state.save(&self.state_dir) {
            eprintln!("update: {err}");
        }
    }

    pub fn note(&self, text: String) {
        self.change(|state| state.event(text));
    }

    fn set_activity(&self, text: impl Into<String>) {
        self.shared().activity = text.into();
    }

    pub fn status(&self) -> Status {
        let shared = self.shared();
        Status {
            version: self.running.to_string(),
            slot: Some(self.params.slot),
            on_trial: shared.on_trial,
            activity: shared.activity.clone(),
            available: shared.available.clone(),
            events: shared.state.events.clone(),
        }
    }

    pub fn report_health(&self, health: Health) {
        self.shared().health = Some(health);
    }

    /// The trial armed in this boot, waiting for the reboot.
    fn armed(&self) -> Option<Trial> {
        let shared = self.shared();
        shared
            .state
            .trial
            .clone()
            .filter(|trial| trial.armed_in_boot == self.boot_id)
    }

    fn quiet_hour_text(&self) -> String {
        format!("{:02}:00 UTC", self.config.quiet_hour)
    }

    /// Asks PID 1 for an orderly reboot (the service table gives updated `reboot = true`):
    /// `Message::Reboot`, or one that starts a Pi's trial.
    fn reboot_now(&self, reboot: Message) -> Result<()> {
        let Some(pipe) = &self.notify else {
            return Err(Error::Refused(
                "not started by PID 1, so there is no one to ask for a reboot".into(),
            ));
        };
        pipe.send(&reboot)
            .map_err(Error::io("ask PID 1 to reboot through", "the notify pipe"))
    }

    /// The owner's /update reboot: restart into the slot written in this boot.
    pub fn reboot_into_armed(&self) -> Result<String> {
        let Some(trial) = self.armed() else {
            return Err(Error::Refused(
                "no update is written and waiting; /update install gets one first".into(),
            ));
        };
        let text = format!(
            "Restarting into {} (slot {}) now; it is committed once it proves healthy.",
            trial.version, trial.slot
        );
        let reboot = self.boot_control().trial_reboot()?;
        self.note(text.clone());
        self.reboot_now(reboot)?;
        Ok(text)
    }

    /// Looks at the repository without downloading anything but its documents.
    pub async fn check_now(&self, force: bool) -> Result<String> {
        let Ok(mut trust) = self.job.try_lock() else {
            return Err(Error::Refused(
                "an update is being checked or installed right now; its progress comes as messages"
                    .into(),
            ));
        };
        self.set_activity("checking");
        let found = self.check_locked(&mut trust, force).await;
        self.set_activity("idle");
        Ok(match found? {
            Outcome::UpToDate { offered } => format!(
                "Up to date: this box runs {} and the {} channel offers {offered}.",
                self.running, self.config.channel
            ),
            Outcome::NotInWave { offered, permille } => format!(
                "{offered} is out for {}.{}% of boxes so far, not yet this one; /update install force takes it now.",
                permille / 10,
                permille % 10
            ),
            Outcome::Found(manifest) => format!(
                "{} is available (this box runs {}). /update install downloads and writes it; nothing restarts until you say /update reboot or the quiet hour ({}).",
                manifest.version,
                self.running,
                self.quiet_hour_text()
            ),
        })
    }

    async fn check_locked(&self, trust: &mut Trust, force: bool) -> Result<Outcome> {
        let last_serial = self.shared().state.pointer_serial;
        let checked = check::check(
            &self.repo,
            trust,
            last_serial,
            &self.state_dir,
            &CheckInput {
                channel: &self.config.channel,
                board: &self.board,
                running: &self.running,
                wave_id: &self.wave_id,
                force,
                now: unix_now(),
            },
        )
        .await?;
        self.change(|state| {
            state.pointer_serial = Some(checked.serial.max(state.pointer_serial.unwrap_or(0)));
            if let Some(serial) = checked.key_list_taken {
                state.event(format!(
                    "Took the repository's newer key list (serial {serial})."
                ));
            }
        });
        self.shared().available = match &checked.outcome {
            Outcome::Found(manifest) => Some(manifest.version.to_string()),
            _ => None,
        };
        Ok(checked.outcome)
    }

    /// Starts an install in the background; its progress and result come as events. Refused
    /// at once (with the reason) when one cannot start now.
    pub fn start_install(self: &Arc<Self>, force: bool, asked: bool) -> Result<String> {
        if self.shared().on_trial {
            return Err(Error::Refused(format!(
                "this boot is still a trial of {}; it must prove healthy first",
                self.running
            )));
        }
        if let Some(trial) = self.armed().filter(|_| !force) {
            return Err(Error::Refused(format!(
                "{} is already written to slot {}; /update reboot starts it",
                trial.version, trial.slot
            )));
        }
        let Ok(trust) = Arc::clone(&self.job).try_lock_owned() else {
            return Err(Error::Refused(
                "an update is being checked or installed right now; its progress comes as messages"
                    .into(),
            ));
        };
        let updater = Arc::clone(self);
        tokio::spawn(async move {
            let mut trust = trust;
            updater.install(&mut trust, force, asked).await;
            updater.set_activity("idle");
        });
        Ok("Looking for an update; what happens next comes as messages.".into())
    }

    async fn install(&self, trust: &mut Trust, force: bool, asked: bool) {
        self.set_activity("checking");
        let manifest = match self.check_locked(trust, force).await {
            Ok(Outcome::Found(manifest)) => manifest,
            Ok(Outcome::UpToDate { offered }) => {
                if asked {
                    self.note(format!(
                        "Nothing to install: this box runs {} and the {} channel offers {offered}.",
                        self.running, self.config.channel
                    ));
                }
                return;
            }
            Ok(Outcome::NotInWave { offered, .. }) => {
                if asked {
                    self.note(format!(
                        "{offered} is not offered to this box yet (rollout wave); /update install force takes it now."
                    ));
                }
                return;
            }
            // A scheduled check that fails (no network, the server down) is said on the
            // console only: the owner did not ask, and the next check comes by itself.
            Err(err) if !asked => {
                println!("update: the scheduled check failed: {err}");
                return;
            }
            Err(err) => {
                self.note(format!("The update check failed: {err}"));
                return;
            }
        };
        let version = manifest.version.to_string();
        let target = self.params.slot.other();
        match self.download_and_write(&manifest).await {
            Ok(()) => {
                let im_was_connected = self
                    .shared()
                    .health
                    .as_ref()
                    .is_some_and(|health| health.im_connected);
                let text = format!(
                    "{version} is written to slot {target}. It starts at {}, or now with /update reboot.",
                    self.quiet_hour_text()
                );
                self.change(|state| {
                    state.trial = Some(Trial {
                        version: version.clone(),
                        slot: target,
                        from_version: self.running.to_string(),
                        armed_in_boot: self.boot_id.clone(),
                        im_was_connected,
                        boots: 0,
                    });
                    state.event(text);
                });
            }
            Err(err) => self.note(format!(
                "Installing {version} failed: {err}. The running slot {} is untouched; /update install tries again.",
                self.params.slot
            )),
        }
    }

    async fn download_and_write(&self, manifest: &carapace_update::CheckedManifest) -> Result<()> {
        let manifest: carapace_update::Manifest = (**manifest).clone();
        let params = self.params.clone();
        self.set_activity(format!(
            "reading slot {} for the chunks it already has",
            params.slot
        ));
        let (slots, index) = {
            let manifest = manifest.clone();
            let params = params.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let slots = Slots::find(&params)?;
                let index = slots.index_running(&manifest)?;
                Ok((slots, index))
            })
            .await
            .map_err(|err| Error::Refused(format!("the slot reader stopped: {err}")))??
        };
        let plan = plan(&index, &manifest);
        let needed = plan.download.clone();
        let needed_bytes = plan.download_bytes();
        let whole: u64 = manifest
            .artifacts()
            .iter()
            .map(|artifact| artifact.size)
            .sum();
        let patches = match plan.patches() {
            0 => String::new(),
            1 => String::from(", a patch against this box's files among them"),
            count => format!(", {count} patches against this box's files among them"),
        };
        self.note(match needed.len() {
            0 => format!(
                "Writing {}: every chunk of it is already on this box, nothing to download.",
                manifest.version
            ),
            count => format!(
                "Downloading {}: {} of {} ({count} chunk{}{patches}; the rest is already on this box).",
                manifest.version,
                mib(needed_bytes),
                mib(whole),
                if count == 1 { "" } else { "s" },
            ),
        });
        let downloads = self.state_dir.join(DOWNLOADS);
        std::fs::create_dir_all(&downloads).map_err(Error::io("create", &downloads))?;
        let mut throttle =
            Throttle::new(self.config.max_kib_per_s.map(|kib| u64::from(kib) * 1024));
        let mut done = 0;
        let started = Instant::now();
        for chunk in &needed {
            self.repo.chunk(chunk, &downloads, &mut throttle).await?;
            done += u64::from(chunk.length);
            self.set_activity(format!(
                "downloading {}: {} of {}",
                manifest.version,
                mib(done),
                mib(needed_bytes)
            ));
        }
        println!(
            "update: downloaded {} bytes in {} ms",
            needed_bytes,
            started.elapsed().as_millis()
        );
        self.set_activity(format!("writing slot {}", params.slot.other()));
        let mut boot = self.boot_control();
        let written_from = downloads.clone();
        tokio::task::spawn_blocking(move || {
            install::write_slot(&manifest, &index, &written_from, &slots, &params, &mut boot)
        })
        .await
        .map_err(|err| Error::Refused(format!("the slot writer stopped: {err}")))??;
        install::clear_downloads(&downloads);
        Ok(())
    }

    /// At start: judge this boot if it is a trial, or tell how the last trial ended if the
    /// old slot runs again.
    pub async fn settle_trial(self: &Arc<Self>) {
        let on_trial = match self.boot_control().is_trial() {
            Ok(on_trial) => on_trial,
            Err(err) => {
                eprintln!("update: cannot read the boot entries: {err}");
                self.set_activity(format!("boot control unavailable: {err}"));
                return;
            }
        };
        let booted = self.params.slot;
        let last = self.shared().state.trial.clone();
        if !on_trial {
            // Said on every boot that is not a trial, as "trial boot" is on every one that is:
            // whoever watches the console knows which this boot is without waiting.
            println!("update: slot {booted} is committed");
            if let Some(trial) = last.filter(|t| t.armed_in_boot != self.boot_id) {
                if trial.slot != booted {
                    // A Pi's trial has one boot; systemd-boot counts several.
                    let how = match self.pi_trial_start {
                        Some(_) => "in its one trial boot",
                        None => "and ran out of boot tries",
                    };
                    self.change(|state| {
                        state.trial = None;
                        state.event(format!(
                            "{} did not start properly in slot {} {how}; back on {} (slot {booted}).",
                            trial.version, trial.slot, self.running
                        ));
                    });
                } else {
                    self.change(|state| state.trial = None);
                }
            }
            return;
        }
        self.shared().on_trial = true;
        let trial = match last.filter(|t| t.slot == booted) {
            Some(mut trial) => {
                trial.boots += 1;
                trial
            }
            // Armed by another way than this service (or its state was lost): judge it all
            // the same, without the IM condition nobody recorded.
            None => Trial {
                version: self.running.to_string(),
                slot: booted,
                from_version: String::from("the previous version"),
                armed_in_boot: String::new(),
                im_was_connected: false,
                boots: 1,
            },
        };
        let boots = trial.boots;
        self.change(|state| state.trial = Some(trial.clone()));
        self.set_activity(format!("on trial: {} in slot {booted}", trial.version));
        println!(
            "update: trial boot {boots} of {} in slot {booted}",
            trial.version
        );
        if boots > trial::MAX_TRIAL_BOOTS {
            self.roll_back(
                &trial,
                &format!("it booted {boots} times without proving healthy"),
            );
            return;
        }
        self.watch_trial(&trial).await;
    }

    async fn watch_trial(&self, trial: &Trial) {
        let started = Instant::now();
        let mut box_healthy_since = started;
        let mut next_probe = Instant::now();
        let mut refilled = false;
        loop {
            let health = self.shared().health.clone();
            if board_support::box_health::marked_unhealthy() {
                box_healthy_since = Instant::now();
            }
            match trial::judge(
                health.as_ref(),
                trial.im_was_connected,
                started.elapsed(),
                box_healthy_since.elapsed(),
                Duration::from_secs(u64::from(self.config.trial_stable_s)),
                self.health_deadline,
                Instant::now(),
            ) {
                Verdict::Commit => return self.commit(trial, health.as_ref()),
                Verdict::Rollback(reason) => return self.roll_back(trial, &reason),
                Verdict::Wait => {}
                Verdict::ProbeNetwork if Instant::now() >= next_probe => {
                    next_probe = Instant::now() + NETWORK_PROBE;
                    let pointer = carapace_update::layout::channel(&self.config.channel);
                    if self.repo.optional_document(&pointer).await.is_ok() {
                        return self.roll_back(
                            trial,
                            &format!(
                                "its IM link did not come back within {} s, though the update server is reachable",
                                self.health_deadline.as_secs()
                            ),
                        );
                    }
                    if !refilled {
                        // No network is not the slot's fault: give its tries back so resets
                        // while it waits do not use them up.
                        let mut boot = self.boot_control();
                        match boot.arm_trial(self.params.slot) {
                            Ok(()) => refilled = true,
                            Err(err) => eprintln!("update: refilling the trial's tries: {err}"),
                        }
                        println!(
                            "update: no network; the trial of {} waits for it before it is judged",
                            trial.version
                        );
                    }
                }
                Verdict::ProbeNetwork => {}
            }
            tokio::time::sleep(TRIAL_POLL).await;
        }
    }

    fn commit(&self, trial: &Trial, health: Option<&Health>) {
        let mut boot = self.boot_control();
        if let Err(err) = boot.commit() {
            // The slot stays on trial: its tries run out and the old slot comes back, which
            // is safe; say so rather than pretend.
            self.note(format!(
                "{} is healthy but could not be committed ({err}); the box will go back to {}.",
                trial.version, trial.from_version
            ));
            return;
        }
        let link = if health.is_some_and(|h| h.im_connected) {
            " and its chat link is back"
        } else {
            ""
        };
        let text = format!(
            "Updated to {} (slot {}): agentd passed its self-test{link}; committed.",
            trial.version, self.params.slot
        );
        self.change(|state| {
            state.trial = None;
            state.event(text);
        });
        println!(
            "update: committed slot={} version={}",
            self.params.slot, trial.version
        );
        let mut shared = self.shared();
        shared.on_trial = false;
        shared.activity = "idle".into();
    }

    fn roll_back(&self, trial: &Trial, reason: &str) {
        let mut boot = self.boot_control();
        let other = self.params.slot.other();
        let outcome = boot.rollback();
        let text = match &outcome {
            Ok(()) => format!(
                "{} failed its trial in slot {}: {reason}. Going back to {} (slot {other}).",
                trial.version, self.params.slot, trial.from_version
            ),
            Err(err) => format!(
                "{} failed its trial: {reason}; going back was refused ({err}).",
                trial.version
            ),
        };
        self.change(|state| {
            state.trial = None;
            state.event(text);
        });
        println!(
            "update: rolled back slot={} reason={reason}",
            self.params.slot
        );
        if outcome.is_ok()
            && let Err(err) = self.reboot_now(Message::Reboot)
        {
            eprintln!("update: {err}");
        }
    }

    /// The schedule: a check every `check_hours` (with jitter) that installs what it finds,
    /// and the reboot at the quiet hour once an update is written.
    pub async fn run_schedule(self: Arc<Self>, first_check: Duration) {
        let mut next_check = Instant::now() + first_check;
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            if self.armed().is_some() && utc_hour(unix_now()) == u32::from(self.config.quiet_hour) {
                if let Err(err) = self.reboot_into_armed() {
                    eprintln!("update: quiet-hour reboot: {err}");
                }
                continue;
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + jittered(self.config.check_hours);
                if self.armed().is_none()
                    && let Err(err) = self.start_install(false, false)
                {
                    println!("update: scheduled check skipped: {err}");
                }
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn utc_hour(unix: u64) -> u32 {
    ((unix % 86_400) / 3_600) as u32
}

/// `hours`, give or take a tenth, so a fleet does not hit the server all at once.
pub fn jittered(hours: u32) -> Duration {
    let base = u64::from(hours.max(1)) * 3_600;
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    let spread = base / 5;
    let offset = u64::from_le_bytes(random) % spread.max(1);
    Duration::from_secs(base - base / 10 + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let wait = jittered(24).as_secs();
            assert!((77_760..=95_040).contains(&wait), "{wait}");
        }
    }

    #[test]
    fn hours_of_the_day() {
        assert_eq!(utc_hour(0), 0);
        assert_eq!(utc_hour(3 * 3_600 + 59), 3);
        assert_eq!(utc_hour(86_400 + 23 * 3_600), 23);
    }
}
