//! Settings transactions: new settings are kept only if the links they make reach the model
//! and every IM link within [`SETTINGS_TRIAL`]; a change of the Wi-Fi networks goes through
//! netd's trial (netd_control.rs), which netd reverts by itself unless agentd commits.

use std::sync::Arc;
use std::time::Duration;

use carapace_im::ChannelKind;
use carapace_owner::OwnerSettings;

use super::{Runtime, now};
use crate::links::Links;

/// New settings must reach the model and the IM link within this long to be kept.
pub const SETTINGS_TRIAL: Duration = Duration::from_secs(30);
/// netd reverts a Wi-Fi trial by itself this long after the check's deadline, should agentd
/// not say commit or revert by then (it died in between): time for the check's last
/// exchange and the commit itself.
pub const WIFI_REVERT_MARGIN: Duration = Duration::from_secs(30);
/// Between two checks of links on new Wi-Fi networks, which take a few seconds to come up.
const WIFI_CHECK_PAUSE: Duration = Duration::from_secs(2);

impl Runtime {
    /// Tries `candidate`: kept (and made the last good settings) only if the new links reach
    /// the model and the IM link within [`SETTINGS_TRIAL`]; otherwise the running links stay.
    /// New Wi-Fi networks are put on trial in netd first, committed with the settings or
    /// reverted (and netd reverts by itself should agentd die in between).
    /// The owner hears the outcome either way; the audit log gets it too.
    pub async fn try_settings(
        &mut self,
        candidate: OwnerSettings,
        changed: &str,
        channel: ChannelKind,
        chat: &str,
    ) {
        let now = now();
        let toml = candidate.to_toml();
        if let Err(error) = self.agent.store.put_setting("trial", Some(&toml)) {
            eprintln!("agent: recording the settings trial: {error}");
        }
        let wifi = candidate.wifi != self.agent.settings.wifi;
        // What became of the Wi-Fi networks when the change is not kept.
        let mut wifi_note = "";
        let outcome = match Links::build(&candidate, &self.http) {
            Ok(links) if wifi => {
                self.check_on_new_wifi(&candidate, links)
                    .await
                    .map_err(|(reason, note)| {
                        wifi_note = note;
                        reason
                    })
            }
            Ok(links) => match tokio::time::timeout(SETTINGS_TRIAL, links.check()).await {
                Ok(Ok(())) => Ok(links),
                Ok(Err(failure)) => Err(failure.reason),
                Err(_) => Err(format!("no answer within {} s", SETTINGS_TRIAL.as_secs())),
            },
            Err(error) => Err(error),
        };
        let text = match outcome {
            Ok(links) => match self.agent.store.set_settings(&toml, Some(&toml)) {
                Ok(()) => {
                    self.agent.settings = candidate;
                    self.links.send_replace(Some(Arc::new(links)));
                    self.agent.record(
                        "settings",
                        &format!("{changed} changed; the new settings work"),
                        now,
                    );
                    format!("Done: {changed} changed, and I still reach the model and this chat.")
                }
                Err(error) if wifi => format!(
                    "The new Wi-Fi networks are in force, but storing the settings failed: \
                     {error}. /settings shows the old ones until that works."
                ),
                Err(error) => format!("Not changed: storing the settings failed: {error}"),
            },
            Err(reason) => {
                self.agent.record(
                    "settings",
                    &format!("{changed} not changed; kept the last good settings: {reason}"),
                    now,
                );
                format!(
                    "I kept the previous settings: with the new {changed}, {reason}. Nothing else \
                     changed.{wifi_note}"
                )
            }
        };
        if let Err(error) = self.agent.store.put_setting("trial", None) {
            eprintln!("agent: clearing the settings trial: {error}");
        }
        self.queue(channel, chat, text);
    }

    /// netd puts the candidate's networks on trial; the links are checked until they work or
    /// [`SETTINGS_TRIAL`] ends (a network takes a few seconds to join and lease), and netd is
    /// told to commit or to go back. A failure comes with what the owner should know of the
    /// Wi-Fi networks (nothing when netd never took the new ones).
    async fn check_on_new_wifi(
        &self,
        candidate: &OwnerSettings,
        links: Links,
    ) -> Result<Links, (String, &'static str)> {
        let revert_after = SETTINGS_TRIAL + WIFI_REVERT_MARGIN;
        self.netd
            .wifi_trial(&candidate.wifi, revert_after)
            .await
            .map_err(|error| (format!("netd did not take the Wi-Fi networks: {error}"), ""))?;
        let deadline = tokio::time::Instant::now() + SETTINGS_TRIAL;
        let checked = loop {
            let failure = match tokio::time::timeout_at(deadline, links.check()).await {
                Ok(Ok(())) => break Ok(()),
                Ok(Err(failure)) => failure,
                Err(_) => break Err(format!("no answer within {} s", SETTINGS_TRIAL.as_secs())),
            };
            if !failure.transient || tokio::time::Instant::now() + WIFI_CHECK_PAUSE >= deadline {
                break Err(failure.reason);
            }
            tokio::time::sleep(WIFI_CHECK_PAUSE).await;
        };
        let checked = match checked {
            // A commit netd refuses: its own deadline passed, or it restarted; either way it
            // went back.
            Ok(()) => self
                .netd
                .commit()
                .await
                .map_err(|error| format!("netd did not keep the Wi-Fi networks: {error}")),
            Err(reason) => Err(reason),
        };
        let Err(reason) = checked else {
            return Ok(links);
        };
        match self.netd.revert().await {
            Ok(()) => Err((reason, " The box is back on its previous Wi-Fi networks.")),
            Err(error) => {
                eprintln!(
                    "settings: asking netd to go back to the previous Wi-Fi networks: {error}; \
                     it goes back by itself within {} s",
                    revert_after.as_secs()
                );
                Err((
                    reason,
                    " netd goes back to the previous Wi-Fi networks by itself within a minute.",
                ))
            }
        }
    }

    /// A trial that a crash or power cut interrupted: the running settings were never
    /// replaced, so nothing is undone; the owner is told the change did not happen.
    /// netd is told to go back too, in case the trial changed the Wi-Fi networks (it would
    /// by itself, a little later).
    pub fn finish_interrupted_trial(&mut self) {
        let Ok(Some(trial)) = self.agent.store.settings("trial") else {
            return;
        };
        let _ = self.agent.store.put_setting("trial", None);
        let wifi_changed = OwnerSettings::parse(&trial)
            .map_or(true, |trial| trial.wifi != self.agent.settings.wifi);
        if wifi_changed {
            let netd = self.netd.clone();
            tokio::spawn(async move {
                match netd.revert().await {
                    Ok(()) => println!("settings: netd went back to the last good Wi-Fi networks"),
                    // Nothing pending: netd went back by itself already, or never began.
                    Err(error) => println!("settings: no Wi-Fi trial to undo in netd ({error})"),
                }
            });
        }
        self.agent.record(
            "settings",
            "a settings trial was interrupted by a restart; the last good settings are in use",
            now(),
        );
        let owners: Vec<_> = self
            .agent
            .store
            .users()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.role == crate::store::Role::Owner)
            .collect();
        for owner in owners {
            self.queue(
                owner.channel,
                &owner.id,
                "A settings change was interrupted by a restart; I kept the last good settings."
                    .into(),
            );
        }
    }
}
