//! A Wi-Fi network as the owner gives it: an SSID and a passphrase (empty for an open
//! network). One definition, with its one set of rules, for every side that handles one:
//! netd's configuration file, the owner-settings file and chat (`carapace-owner`), and netd's
//! control socket between them. Two copies of the rules would drift, and a network the owner
//! may set that netd then refuses would fail only on the box.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An SSID is at most 32 bytes (IEEE 802.11).
pub const MAX_SSID_BYTES: usize = 32;
/// WPA2/WPA3-Personal passphrases are 8 to 63 printable ASCII characters.
pub const PASSPHRASE_CHARS: std::ops::RangeInclusive<usize> = 8..=63;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiNetwork {
    pub ssid: String,
    /// Empty (or left out) for an open network.
    #[serde(default)]
    pub passphrase: String,
}

/// Keeps the passphrase out of logs and panic messages.
impl fmt::Debug for WifiNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WifiNetwork")
            .field("ssid", &self.ssid)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a network: which field ("ssid" or "passphrase") and why, in words
/// that say what to write instead. Never carries the passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub problem: String,
}

impl WifiNetwork {
    pub fn is_open(&self) -> bool {
        self.passphrase.is_empty()
    }

    pub fn problem(&self) -> Option<Problem> {
        let ssid = &self.ssid;
        if ssid.is_empty() || ssid.len() > MAX_SSID_BYTES || ssid.chars().any(char::is_control) {
            return Some(Problem {
                field: "ssid",
                problem: format!(
                    "{ssid:?} is not an SSID: 1 to {MAX_SSID_BYTES} bytes without control \
                     characters (it has {} bytes)",
                    ssid.len()
                ),
            });
        }
        let chars = self.passphrase.chars().count();
        let printable = self.passphrase.bytes().all(|b| (b' '..=b'~').contains(&b));
        if !self.is_open() && (!PASSPHRASE_CHARS.contains(&chars) || !printable) {
            return Some(Problem {
                field: "passphrase",
                problem: format!(
                    "the passphrase of {ssid:?} must be {} to {} printable ASCII characters, or \
                     empty for an open network (it has {chars} characters{})",
                    PASSPHRASE_CHARS.start(),
                    PASSPHRASE_CHARS.end(),
                    if printable {
                        ""
                    } else {
                        ", some not printable ASCII"
                    }
                ),
            });
        }
        None
    }
}

/// The first problem of a list of networks, with its place in the list: a network that
/// breaks the rules, or an SSID listed twice (which passphrase would be meant?).
pub fn list_problem(networks: &[WifiNetwork]) -> Option<(usize, Problem)> {
    let mut seen = BTreeSet::new();
    for (index, network) in networks.iter().enumerate() {
        if let Some(problem) = network.problem() {
            return Some((index, problem));
        }
        if !seen.insert(network.ssid.as_str()) {
            return Some((
                index,
                Problem {
                    field: "ssid",
                    problem: format!("{:?} is configured twice; keep one", network.ssid),
                },
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(ssid: &str, passphrase: &str) -> WifiNetwork {
        WifiNetwork {
            ssid: ssid.into(),
            passphrase: passphrase.into(),
        }
    }

    fn field_of(ssid: &str, passphrase: &str) -> Option<&'static str> {
        network(ssid, passphrase).problem().map(|p| p.field)
    }

    #[test]
    fn the_rules() {
        assert_eq!(field_of("home", "12345678"), None);
        assert_eq!(field_of("home", &"x".repeat(63)), None);
        assert_eq!(field_of("café 5 GHz", "correct horse battery"), None);
        assert_eq!(field_of(&"s".repeat(32), ""), None, "open network");
        assert_eq!(field_of("", "12345678"), Some("ssid"));
        assert_eq!(field_of(&"s".repeat(33), "12345678"), Some("ssid"));
        // 11 characters, 33 bytes.
        assert_eq!(field_of(&"é".repeat(17), "12345678"), Some("ssid"));
        assert_eq!(field_of("evil\nline", "12345678"), Some("ssid"));
        assert_eq!(field_of("home", "1234567"), Some("passphrase"));
        assert_eq!(field_of("home", &"x".repeat(64)), Some("passphrase"));
        assert_eq!(field_of("home", "tab\tinside"), Some("passphrase"));
        assert_eq!(field_of("home", "pässphrase"), Some("passphrase"));
    }

    #[test]
    fn problems_never_show_the_passphrase() {
        for secret in ["short", "tab\tinside secret", &"y".repeat(70)] {
            let problem = network("home", secret).problem().expect("a problem");
            assert!(!problem.problem.contains(secret), "{problem:?}");
            assert!(problem.problem.contains("8 to 63"), "{problem:?}");
        }
        let shown = format!("{:?}", network("home", "correct horse"));
        assert!(!shown.contains("correct horse"), "{shown}");
    }

    #[test]
    fn a_list_names_the_index_and_refuses_twins() {
        let list = [network("a", "12345678"), network("b", "x")];
        assert_eq!(
            list_problem(&list).map(|(i, p)| (i, p.field)),
            Some((1, "passphrase"))
        );
        let twins = [network("a", "12345678"), network("a", "")];
        let (index, problem) = list_problem(&twins).expect("twins");
        assert_eq!(index, 1);
        assert!(problem.problem.contains("twice"), "{problem:?}");
        assert_eq!(list_problem(&[]), None);
    }

    #[test]
    fn an_open_network_may_leave_the_passphrase_out() {
        let open: WifiNetwork = serde_json::from_str(r#"{"ssid":"cafe"}"#).unwrap();
        assert!(open.is_open());
        let error = serde_json::from_str::<WifiNetwork>(r#"{"ssid":"a","psk":"b"}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
