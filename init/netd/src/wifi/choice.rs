//! What the station loop does next, decided from what iwd reports: pure, so it is tested
//! without a bus.

use std::collections::BTreeSet;

use carapace_netpolicy::config::WifiNetwork;

/// A network iwd sees, with its signal in dBm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ssid: String,
    pub signal_dbm: i16,
    /// iwd's type "open"; a configured network is joined only with the security it was
    /// configured with (a passphrase: "psk"), so an open twin of it is never joined.
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Connected, or on the way there or back: leave iwd to it.
    Wait,
    /// Disconnected and no configured network in sight: ask for a fresh scan.
    Scan,
    /// Disconnected and this configured network is in sight.
    Join(String),
}

/// iwd reports signal strength in hundredths of a dBm.
pub fn dbm(iwd_signal: i16) -> i16 {
    iwd_signal / 100
}

/// The first configured network, in the configuration's order, that iwd sees with the
/// configured security: the owner's order is the preference, not the signal.
pub fn network_to_join<'a>(configured: &[WifiNetwork], seen: &'a [Seen]) -> Option<&'a Seen> {
    configured.iter().find_map(|wanted| {
        seen.iter()
            .find(|s| s.ssid == wanted.ssid && s.open == wanted.is_open())
    })
}

/// The SSIDs whose profile in iwd may be stale after the networks changed from `before` to
/// `after`: gone from the list, or with another passphrase (iwd would keep joining with the
/// one it saved).
pub fn stale(before: &[WifiNetwork], after: &[WifiNetwork]) -> BTreeSet<String> {
    before
        .iter()
        .filter(|old| !after.contains(old))
        .map(|old| old.ssid.clone())
        .collect()
}

/// Which of iwd's known networks to forget: those not configured (iwd must not join them on
/// its own) and those whose profile is stale. Forgetting a network iwd is connected to also
/// disconnects it, and the station loop then joins what is configured.
pub fn to_forget(
    known: &[String],
    configured: &[WifiNetwork],
    stale: &BTreeSet<String>,
) -> Vec<String> {
    known
        .iter()
        .filter(|name| stale.contains(*name) || !configured.iter().any(|n| &n.ssid == *name))
        .cloned()
        .collect()
}

pub fn next_step(state: &str, configured: &[WifiNetwork], seen: &[Seen]) -> Step {
    if state != "disconnected" || configured.is_empty() {
        return Step::Wait;
    }
    match network_to_join(configured, seen) {
        Some(network) => Step::Join(network.ssid.clone()),
        None => Step::Scan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(ssids: &[&str]) -> Vec<WifiNetwork> {
        ssids
            .iter()
            .map(|ssid| WifiNetwork {
                ssid: (*ssid).to_owned(),
                passphrase: "passphrase".to_owned(),
            })
            .collect()
    }

    fn seen(list: &[(&str, i16)]) -> Vec<Seen> {
        list.iter()
            .map(|(ssid, signal_dbm)| Seen {
                ssid: (*ssid).to_owned(),
                signal_dbm: *signal_dbm,
                open: false,
            })
            .collect()
    }

    #[test]
    fn iwd_signal_is_hundredths_of_a_dbm() {
        assert_eq!(dbm(-3000), -30);
        assert_eq!(dbm(-6750), -67);
    }

    #[test]
    fn the_configuration_order_wins_over_the_signal() {
        let configured = configured(&["home", "shop"]);
        let seen = seen(&[("shop", -40), ("cafe", -30), ("home", -80)]);
        assert_eq!(network_to_join(&configured, &seen).unwrap().ssid, "home");
    }

    #[test]
    fn an_unconfigured_network_is_never_joined() {
        let configured = configured(&["home"]);
        let seen = seen(&[("cafe", -30)]);
        assert_eq!(network_to_join(&configured, &seen), None);
        assert_eq!(next_step("disconnected", &configured, &seen), Step::Scan);
    }

    #[test]
    fn a_disconnected_station_joins_the_configured_network_in_sight() {
        let configured = configured(&["home", "shop"]);
        let seen = seen(&[("shop", -40)]);
        assert_eq!(
            next_step("disconnected", &configured, &seen),
            Step::Join("shop".to_owned())
        );
    }

    #[test]
    fn a_busy_or_connected_station_is_left_alone() {
        let configured = configured(&["home"]);
        let seen = seen(&[("home", -40)]);
        for state in ["connected", "connecting", "disconnecting", "roaming"] {
            assert_eq!(next_step(state, &configured, &seen), Step::Wait, "{state}");
        }
    }

    fn network(ssid: &str, passphrase: &str) -> WifiNetwork {
        WifiNetwork {
            ssid: ssid.to_owned(),
            passphrase: passphrase.to_owned(),
        }
    }

    #[test]
    fn a_network_is_joined_only_with_its_configured_security() {
        let configured = [network("home", "home-secret"), network("cafe", "")];
        let mut seen = seen(&[("home", -40), ("cafe", -50)]);
        // An open "home" (an evil twin) and a "cafe" that wants a passphrase: neither.
        seen[0].open = true;
        assert_eq!(network_to_join(&configured, &seen), None);
        seen[1].open = true;
        assert_eq!(network_to_join(&configured, &seen).unwrap().ssid, "cafe");
        seen[0].open = false;
        assert_eq!(network_to_join(&configured, &seen).unwrap().ssid, "home");
    }

    #[test]
    fn profiles_go_stale_when_a_network_goes_or_its_passphrase_changes() {
        let before = [
            network("kept", "same-secret"),
            network("changed", "old-secret"),
            network("gone", "gone-secret"),
        ];
        let after = [
            network("changed", "new-secret"),
            network("kept", "same-secret"),
            network("added", ""),
        ];
        let stale = stale(&before, &after);
        assert_eq!(stale, BTreeSet::from(["changed".into(), "gone".into()]));
        let known: Vec<String> = ["kept", "changed", "gone", "neighbour"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            to_forget(&known, &after, &stale),
            ["changed", "gone", "neighbour"]
        );
        assert_eq!(
            to_forget(&known, &after, &BTreeSet::new()),
            ["gone", "neighbour"]
        );
        assert!(to_forget(&known, &after, &BTreeSet::new()).len() < known.len());
    }

    #[test]
    fn without_configured_networks_nothing_is_scanned_or_joined() {
        assert_eq!(
            next_step("disconnected", &[], &seen(&[("home", -40)])),
            Step::Wait
        );
    }
}
