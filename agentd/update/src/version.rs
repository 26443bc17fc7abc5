//! Release versions, compared numerically: `1.10.0` is newer than `1.9.3`, and a pre-release
//! (`2.0.0-rc.1`) is older than its release. One to four dot-separated numbers (missing ones
//! count as 0, so `1.2` and `1.2.0` are the same version), then optionally `-` and dot-separated
//! identifiers compared as semver does. No build metadata (`+…`): two builds that differ only
//! there would be one version to the box and two to the people reading the logs.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Room for any real version; the bound keeps a hostile file from carrying a megabyte of one.
const MAX_LEN: usize = 64;
const MAX_NUMBERS: usize = 4;

#[derive(Clone)]
pub struct Version {
    text: String,
    numbers: [u64; MAX_NUMBERS],
    pre: Vec<PreIdentifier>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PreIdentifier {
    // Declared first: numeric identifiers sort before alphanumeric ones.
    Number(u64),
    Text(String),
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, String> {
        let bad = |why: &str| {
            Err(format!(
                "version {text:?} {why}; write numbers such as 1.4.2 or 2.0.0-rc.1"
            ))
        };
        if text.is_empty() || text.len() > MAX_LEN {
            return bad(&format!("must be 1 to {MAX_LEN} characters"));
        }
        let (release, pre) = match text.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (text, None),
        };
        let mut numbers = [0u64; MAX_NUMBERS];
        let parts: Vec<&str> = release.split('.').collect();
        if parts.len() > MAX_NUMBERS {
            return bad("has more than four numbers");
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            match number(part) {
                Some(n) => *slot = n,
                None => return bad("has a part that is not a number"),
            }
        }
        let mut identifiers = Vec::new();
        if let Some(pre) = pre {
            for part in pre.split('.') {
                let ok = !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    return bad("has an empty or odd pre-release part");
                }
                identifiers.push(match number(part) {
                    Some(n) => PreIdentifier::Number(n),
                    None if part.bytes().all(|b| b.is_ascii_digit()) => {
                        return bad("has a pre-release number with a leading zero");
                    }
                    None => PreIdentifier::Text(part.to_owned()),
                });
            }
        }
        Ok(Version {
            text: text.to_owned(),
            numbers,
            pre: identifiers,
        })
    }

    /// As written in the manifest or pointer (which is also what rollout waves hash).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A decimal number without a leading zero (so that each version has one spelling per part).
fn number(part: &str) -> Option<u64> {
    let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.numbers.cmp(&other.numbers).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A release is newer than any of its pre-releases.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Version, String> {
        Version::parse(text)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn compares_numerically_not_as_text() {
        assert!(v("1.10.0") > v("1.9.3"));
        assert!(v("0.10") > v("0.9.99"));
        assert!(v("2") > v("1.99.99.99"));
        assert_eq!(v("1.2"), v("1.2.0"));
        assert_eq!(v("1.2").as_str(), "1.2");
    }

    #[test]
    fn pre_releases_sort_before_their_release() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1-rc.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn odd_spellings_are_refused_with_the_reason() {
        for bad in [
            "",
            "1.",
            ".1",
            "1..2",
            "01.2",
            "1.2.3.4.5",
            "v1.2",
            "1.2-",
            "1.2-rc..1",
            "1.2-rc.01",
            "1.2+build",
            "1.2 ",
            "99999999999999999999999",
        ] {
            let err = Version::parse(bad).unwrap_err();
            assert!(err.contains("version"), "{bad:?}: {err}");
        }
        assert!(Version::parse(&"1".repeat(MAX_LEN + 1)).is_err());
    }
}
