//! What the station loop does next, decided from what iwd reports: pure, so it is tested
//! without a bus.

use carapace_netpolicy::config::WifiNetwork;

/// A network iwd sees, with its signal in dBm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub ssid: String,
    pub signal_dbm: i16,
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

/// The first configured network, in the configuration's order, that iwd sees: the owner's
/// order is the preference, not the signal.
pub fn network_to_join<'a>(configured: &[WifiNetwork], seen: &'a [Seen]) -> Option<&'a Seen> {
    configured
        .iter()
        .find_map(|wanted| seen.iter().find(|s| s.ssid == wanted.ssid))
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

    #[test]
    fn without_configured_networks_nothing_is_scanned_or_joined() {
        assert_eq!(
            next_step("disconnected", &[], &seen(&[("home", -40)])),
            Step::Wait
        );
    }
}
