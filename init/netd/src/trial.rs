//! Wi-Fi trials: new networks are put in force at once, and kept only if a `commit` comes
//! before the deadline; otherwise netd goes back to the networks before the trial by itself.
//! The revert point is a file (`config.before-trial.toml`, the owner's file as it was), so
//! a trial also ends, reverted, when netd or the box restarts in the middle of it: whoever
//! would have committed it is gone or no longer sure.
//!
//! Every step on disk is one atomic write or rename, in an order that a power cut between
//! any two leaves either the old settings or a revert point to go back to:
//! start = write the revert point (unless a trial is already pending: the first one is the
//! state to go back to), then the new owner file; commit = delete the revert point;
//! revert = rename the revert point over the owner file.
//!
//! The decisions take the time as an argument, so they are tested without waiting.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use board_support::atomic_file;
use carapace_netpolicy::config::WifiNetwork;
use carapace_netpolicy::{AllowEntry, NetdConfig};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::settings::{self, Paths};

/// When going back at the deadline fails (a disk error), the next try comes this much later.
pub const RETRY_REVERT: Duration = Duration::from_secs(10);

/// The last trial as the status socket and the console show it; SSIDs only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialReport {
    /// "pending", "committed" or "reverted".
    pub outcome: &'static str,
    pub reason: String,
    /// The SSIDs tried, in order.
    pub networks: Vec<String>,
    /// When this outcome came, by the box's clock.
    pub at_unix: i64,
}

impl TrialReport {
    fn new(outcome: &'static str, reason: String, networks: &[String]) -> TrialReport {
        TrialReport {
            outcome,
            reason,
            networks: networks.to_vec(),
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    /// The console line.
    pub fn line(&self) -> String {
        format!(
            "wifi trial: {} networks={} ({})",
            self.outcome,
            self.networks.join(","),
            self.reason
        )
    }
}

/// The pending trial, if any, and the last outcome.
pub struct Trials {
    owner: std::path::PathBuf,
    before: std::path::PathBuf,
    last_good: std::path::PathBuf,
    pending: Option<Pending>,
    report: Option<TrialReport>,
}

struct Pending {
    deadline: Instant,
    revert_after: Duration,
    ssids: Vec<String>,
}

impl Trials {
    pub fn new(paths: &Paths) -> Trials {
        Trials {
            owner: paths.owner.clone(),
            before: paths.before_trial.clone(),
            last_good: paths.last_good.clone(),
            pending: None,
            report: None,
        }
    }

    /// At start: a revert point on disk is a trial that the netd before this one did not
    /// finish. It is reverted before the configuration is first loaded. Returns the networks
    /// that were on trial (their profiles in iwd are stale), or None when there was none.
    /// If going back fails, the trial stays pending with its deadline now.
    pub fn recover(&mut self, now: Instant) -> Result<Option<Vec<WifiNetwork>>> {
        if !self.before.exists() {
            return Ok(None);
        }
        // Best effort: only used to forget what iwd learnt during the trial.
        let tried = settings::read(&self.owner)
            .ok()
            .flatten()
            .map(|config| config.wifi)
            .unwrap_or_default();
        let ssids = ssids(&tried);
        self.pending = Some(Pending {
            deadline: now,
            revert_after: Duration::ZERO,
            ssids: ssids.clone(),
        });
        self.go_back()?;
        self.pending = None;
        self.report = Some(TrialReport::new(
            "reverted",
            "netd restarted during the trial; the networks before it are back".into(),
            &ssids,
        ));
        Ok(Some(tried))
    }

    /// Puts `networks` in the owner's file (its other tables kept) and arms the deadline.
    /// The caller applies the file, as on SIGHUP.
    pub fn start(
        &mut self,
        networks: &[WifiNetwork],
        revert_after: Duration,
        now: Instant,
    ) -> Result<()> {
        let old_text = read_text(&self.owner)?;
        let mut config = self.base(old_text.as_deref());
        config.wifi = networks.to_vec();
        let new_text = checked_text(&config)?;
        // A trial on top of a pending one keeps the first revert point.
        let first = !self.before.exists();
        if first {
            write(&self.before, old_text.as_deref().unwrap_or(""))?;
        }
        if let Err(err) = write(&self.owner, &new_text) {
            if first {
                // Nothing changed: no revert point either, or it would hold back last-good.
                let _ = std::fs::remove_file(&self.before);
            }
            return Err(err);
        }
        let ssids = ssids(networks);
        self.report = Some(TrialReport::new(
            "pending",
            format!(
                "back to the previous networks in {} s unless committed",
                revert_after.as_secs()
            ),
            &ssids,
        ));
        self.pending = Some(Pending {
            deadline: now + revert_after,
            revert_after,
            ssids,
        });
        Ok(())
    }

    /// Adds `entry` to the owner's file (its other tables kept); says whether it was new. The
    /// caller applies the file, as on SIGHUP.
    pub fn allow(&mut self, entry: AllowEntry) -> Result<bool> {
        if self.trying() {
            return Err(Error::AllowDuringTrial {
                name: entry.name.to_string(),
            });
        }
        let old_text = read_text(&self.owner)?;
        let mut config = self.base(old_text.as_deref());
        if config.allow.contains(&entry) {
            return Ok(false);
        }
        config.allow.push(entry);
        let new_text = checked_text(&config)?;
        write(&self.owner, &new_text)?;
        Ok(true)
    }

    /// Whether a Wi-Fi trial is pending, or its revert point is still on disk: a change to the
    /// allowlist now would be undone (or brought back) by its revert.
    fn trying(&self) -> bool {
        self.pending.is_some() || self.before.exists()
    }

    /// Takes `port` of host `name` out of the owner's file (the entry goes with its last
    /// port); whether anything changed. The image's entries are not in that file.
    pub fn disallow(&mut self, name: &str, port: u16) -> Result<bool> {
        if self.trying() {
            return Err(Error::DisallowDuringTrial {
                name: name.to_string(),
            });
        }
        let Some(old_text) = read_text(&self.owner)? else {
            return Ok(false);
        };
        let mut config = self.base(Some(&old_text));
        let before = config.allow.clone();
        config.allow = before
            .iter()
            .filter_map(|entry| match entry.name.to_string() == name {
                false => Some(entry.clone()),
                true => {
                    let ports: Vec<u16> =
                        entry.ports.iter().copied().filter(|&p| p != port).collect();
                    AllowEntry::new(entry.name.clone(), &ports).ok()
                }
            })
            .collect();
        if config.allow == before {
            return Ok(false);
        }
        let new_text = checked_text(&config)?;
        write(&self.owner, &new_text)?;
        Ok(true)
    }

    /// Keeps the trial: the revert point goes. The caller makes the owner's file the last good.
    pub fn commit(&mut self) -> Result<()> {
        let pending = self
            .pending
            .as_ref()
            .ok_or(Error::NoTrial { op: "commit" })?;
        let ssids = pending.ssids.clone();
        std::fs::remove_file(&self.before).map_err(|source| Error::Remove {
            path: self.before.clone(),
            source,
        })?;
        sync_dir_of(&self.before)?;
        self.pending = None;
        self.report = Some(TrialReport::new(
            "committed",
            "the new networks are kept".into(),
            &ssids,
        ));
        Ok(())
    }

    /// Goes back at once (asked by the controller). The caller applies the restored file.
    pub fn revert(&mut self) -> Result<()> {
        if self.pending.is_none() {
            return Err(Error::NoTrial { op: "revert" });
        }
        self.end_reverted("reverted on request; the previous networks are back".into())
    }

    /// Goes back if the deadline has passed; Ok(true) when it did (the caller applies the
    /// restored file). A failure to go back is tried again [`RETRY_REVERT`] later.
    pub fn expire(&mut self, now: Instant) -> Result<bool> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(false);
        };
        if now < pending.deadline {
            return Ok(false);
        }
        let reason = format!(
            "no commit within {} s; the previous networks are back",
            pending.revert_after.as_secs()
        );
        pending.deadline = now + RETRY_REVERT;
        self.end_reverted(reason).map(|()| true)
    }

    /// When the pending trial ends by itself.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    pub fn report(&self) -> Option<&TrialReport> {
        self.report.as_ref()
    }

    fn end_reverted(&mut self, reason: String) -> Result<()> {
        self.go_back()?;
        let ssids = self.pending.take().map(|p| p.ssids).unwrap_or_default();
        self.report = Some(TrialReport::new("reverted", reason, &ssids));
        Ok(())
    }

    fn go_back(&self) -> Result<()> {
        std::fs::rename(&self.before, &self.owner).map_err(|source| Error::Rename {
            from: self.before.clone(),
            to: self.owner.clone(),
            source,
        })?;
        sync_dir_of(&self.owner)
    }

    /// The tables a trial keeps: the owner's file, or when it does not check (netd then runs
    /// on the last good one) the last good file, or nothing (the image's defaults).
    fn base(&self, owner_text: Option<&str>) -> NetdConfig {
        owner_text
            .and_then(|text| NetdConfig::parse(text).ok())
            .or_else(|| settings::read(&self.last_good).ok().flatten())
            .unwrap_or_default()
    }
}

/// The owner's file for `config`, if it checks.
fn checked_text(config: &NetdConfig) -> Result<String> {
    let problem = |err: &dyn std::fmt::Display| Error::TrialConfig {
        problem: err.to_string(),
    };
    config.validate().map_err(|err| problem(&err))?;
    config.to_toml().map_err(|err| problem(&err))
}

fn ssids(networks: &[WifiNetwork]) -> Vec<String> {
    networks.iter().map(|n| n.ssid.clone()).collect()
}

fn read_text(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The owner's files hold passphrases: netd's alone.
fn write(path: &Path, text: &str) -> Result<()> {
    atomic_file::write(path, text.as_bytes(), 0o600).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn sync_dir_of(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    atomic_file::sync_dir(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "[[allow]]\nname = \"example.org\"\n\n[[wifi]]\nssid = \"old\"\n\
                         passphrase = \"old-secret\"\n";

    struct Setup {
        _dir: tempfile::TempDir,
        paths: Paths,
    }

    fn setup(owner: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths {
            image: dir.path().join("image.toml"),
            owner: dir.path().join("config.toml"),
            last_good: dir.path().join("config.last-good.toml"),
            before_trial: dir.path().join(settings::BEFORE_TRIAL_FILE),
        };
        if let Some(owner) = owner {
            std::fs::write(&paths.owner, owner).expect("write");
        }
        Setup { _dir: dir, paths }
    }

    fn network(ssid: &str, passphrase: &str) -> WifiNetwork {
        WifiNetwork {
            ssid: ssid.into(),
            passphrase: passphrase.into(),
        }
    }

    fn owner(b: &Setup) -> NetdConfig {
        NetdConfig::parse(&std::fs::read_to_string(&b.paths.owner).expect("owner")).expect("parse")
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_trial_replaces_the_networks_keeps_the_rest_and_a_commit_keeps_it() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        let t0 = Instant::now();
        trials
            .start(&[network("new", "new-secret")], MINUTE, t0)
            .expect("start");
        let config = owner(&b);
        assert_eq!(config.wifi, [network("new", "new-secret")]);
        assert_eq!(config.allow[0].name.to_string(), "example.org");
        assert_eq!(
            std::fs::read_to_string(&b.paths.before_trial).expect("revert point"),
            OWNER
        );
        assert_eq!(trials.deadline(), Some(t0 + MINUTE));
        assert_eq!(trials.report().expect("report").outcome, "pending");

        assert!(!trials.expire(t0 + MINUTE / 2).expect("expire"));
        trials.commit().expect("commit");
        assert!(!b.paths.before_trial.exists());
        assert_eq!(trials.deadline(), None);
        assert!(!trials.expire(t0 + MINUTE * 2).expect("expire"));
        assert_eq!(owner(&b).wifi, [network("new", "new-secret")]);
        let report = trials.report().expect("report");
        assert_eq!(
            (report.outcome, report.networks.clone()),
            ("committed", vec!["new".into()])
        );
    }

    #[test]
    fn an_allowed_host_joins_the_owners_file_once_and_never_during_a_trial() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        let entry = |name: &str| AllowEntry::https(name.parse().expect("name"));
        assert!(trials.allow(entry("mcp.example.net")).expect("allow"));
        assert!(!trials.allow(entry("mcp.example.net")).expect("again"));
        let config = owner(&b);
        let names: Vec<String> = config.allow.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["example.org", "mcp.example.net"]);
        assert_eq!(config.wifi, [network("old", "old-secret")]);

        trials
            .start(&[network("new", "new-secret")], MINUTE, Instant::now())
            .expect("start");
        let err = trials.allow(entry("other.example.net")).unwrap_err();
        assert!(
            err.to_string().starts_with("a Wi-Fi change is being tried"),
            "{err}"
        );
        assert_eq!(owner(&b).allow.len(), 2);
    }

    #[test]
    fn a_disallowed_port_leaves_the_owners_file_and_the_entry_with_its_last_port() {
        let b = setup(Some(
            "[[allow]]\nname = \"example.org\"\n\n[[allow]]\nname = \"mcp.example.net\"\n\
             ports = [443, 8443]\n",
        ));
        let mut trials = Trials::new(&b.paths);
        let names_and_ports = |b: &Setup| -> Vec<(String, Vec<u16>)> {
            owner(b)
                .allow
                .iter()
                .map(|e| (e.name.to_string(), e.ports.clone()))
                .collect()
        };
        assert!(trials.disallow("mcp.example.net", 8443).expect("one port"));
        assert_eq!(
            names_and_ports(&b),
            [
                ("example.org".to_string(), vec![443]),
                ("mcp.example.net".to_string(), vec![443])
            ]
        );
        assert!(
            trials
                .disallow("mcp.example.net", 443)
                .expect("the last port")
        );
        assert_eq!(
            names_and_ports(&b),
            [("example.org".to_string(), vec![443])]
        );
        // Not there (any more): nothing changes.
        assert!(!trials.disallow("mcp.example.net", 443).expect("again"));
        assert!(!trials.disallow("example.org", 80).expect("another port"));

        trials
            .start(&[network("new", "new-secret")], MINUTE, Instant::now())
            .expect("start");
        let err = trials.disallow("example.org", 443).unwrap_err();
        assert!(
            err.to_string().starts_with("a Wi-Fi change is being tried"),
            "{err}"
        );
    }

    #[test]
    fn without_a_commit_the_deadline_brings_the_old_file_back() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        let t0 = Instant::now();
        trials
            .start(&[network("new", "")], MINUTE, t0)
            .expect("start");
        assert!(
            !trials
                .expire(t0 + MINUTE - Duration::from_millis(1))
                .expect("early")
        );
        assert!(trials.expire(t0 + MINUTE).expect("due"));
        assert_eq!(
            std::fs::read_to_string(&b.paths.owner).expect("owner"),
            OWNER
        );
        assert!(!b.paths.before_trial.exists());
        let report = trials.report().expect("report");
        assert_eq!(report.outcome, "reverted");
        assert!(
            report.reason.contains("no commit within 60 s"),
            "{report:?}"
        );
        // Nothing pending any more: a late commit is refused, and says why.
        let late = trials.commit().expect_err("late commit").to_string();
        assert!(late.contains("no Wi-Fi trial is pending"), "{late}");
    }

    #[test]
    fn a_revert_goes_back_at_once_and_only_when_a_trial_is_pending() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        assert!(matches!(
            trials.revert(),
            Err(Error::NoTrial { op: "revert" })
        ));
        trials
            .start(&[network("new", "new-secret")], MINUTE, Instant::now())
            .expect("start");
        trials.revert().expect("revert");
        assert_eq!(
            std::fs::read_to_string(&b.paths.owner).expect("owner"),
            OWNER
        );
        assert_eq!(trials.deadline(), None);
        assert!(
            trials
                .report()
                .expect("report")
                .reason
                .contains("on request")
        );
    }

    #[test]
    fn a_trial_on_a_trial_goes_back_to_before_the_first() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        let t0 = Instant::now();
        trials
            .start(&[network("one", "")], MINUTE, t0)
            .expect("one");
        trials
            .start(&[network("two", "")], MINUTE * 2, t0 + MINUTE / 2)
            .expect("two");
        assert_eq!(owner(&b).wifi, [network("two", "")]);
        assert_eq!(trials.deadline(), Some(t0 + MINUTE / 2 + MINUTE * 2));
        assert!(!trials.expire(t0 + MINUTE).expect("first deadline is gone"));
        trials.revert().expect("revert");
        assert_eq!(
            std::fs::read_to_string(&b.paths.owner).expect("owner"),
            OWNER
        );
    }

    #[test]
    fn without_an_owner_file_the_revert_point_is_empty_which_means_the_same() {
        let b = setup(None);
        let mut trials = Trials::new(&b.paths);
        trials
            .start(&[network("new", "new-secret")], MINUTE, Instant::now())
            .expect("start");
        trials.revert().expect("revert");
        let text = std::fs::read_to_string(&b.paths.owner).expect("owner");
        assert_eq!(
            NetdConfig::parse(&text).expect("parse"),
            NetdConfig::default()
        );
    }

    #[test]
    fn a_restart_during_a_trial_reverts_it() {
        let b = setup(Some(OWNER));
        let mut before_restart = Trials::new(&b.paths);
        before_restart
            .start(&[network("new", "new-secret")], MINUTE, Instant::now())
            .expect("start");
        drop(before_restart);
        let mut trials = Trials::new(&b.paths);
        let tried = trials.recover(Instant::now()).expect("recover");
        assert_eq!(tried, Some(vec![network("new", "new-secret")]));
        assert_eq!(
            std::fs::read_to_string(&b.paths.owner).expect("owner"),
            OWNER
        );
        assert!(!b.paths.before_trial.exists());
        assert_eq!(trials.report().expect("report").outcome, "reverted");
        assert_eq!(trials.deadline(), None);
        // A start without a trial left over finds nothing to do.
        assert_eq!(
            Trials::new(&b.paths).recover(Instant::now()).expect("none"),
            None
        );
    }

    #[test]
    fn networks_that_break_the_rules_change_nothing() {
        let b = setup(Some(OWNER));
        let mut trials = Trials::new(&b.paths);
        let error = trials
            .start(
                &[network("new", "bad-but-secret\t")],
                MINUTE,
                Instant::now(),
            )
            .expect_err("refused")
            .to_string();
        assert!(error.contains("wifi[0].passphrase"), "{error}");
        assert!(!error.contains("bad-but-secret"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&b.paths.owner).expect("owner"),
            OWNER
        );
        assert!(!b.paths.before_trial.exists());
        assert_eq!(trials.deadline(), None);
    }

    #[test]
    fn an_owner_file_that_does_not_check_is_the_revert_point_and_last_good_the_base() {
        let b = setup(Some("[[allow]]\nname = \"bad name!\"\n"));
        std::fs::write(&b.paths.last_good, OWNER).expect("last good");
        let mut trials = Trials::new(&b.paths);
        trials
            .start(&[network("new", "")], MINUTE, Instant::now())
            .expect("start");
        let config = owner(&b);
        assert_eq!(config.allow[0].name.to_string(), "example.org");
        assert_eq!(config.wifi, [network("new", "")]);
        trials.revert().expect("revert");
        assert!(
            std::fs::read_to_string(&b.paths.owner)
                .expect("owner")
                .contains("bad name!")
        );
    }
}
