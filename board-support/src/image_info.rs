//! /etc/carapace/image.toml: what the builder tells the box about the image it runs (recipe
//! name, board, version, build id, host name). The builder writes it with `render`, PID 1 and
//! agentd read it with `parse`: one definition, so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where the image info lives on the verified root.
pub const IMAGE_INFO_PATH: &str = "/etc/carapace/image.toml";
/// Where PID 1's service table lives on the verified root.
pub const SERVICE_TABLE_PATH: &str = "/etc/carapace/services.toml";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// The recipe's name, e.g. "x86-64-qemu".
    pub name: String,
    pub board: String,
    /// The workspace version that built it.
    pub version: String,
    /// sha256 of the recipe and its lock, first 16 hex digits.
    pub build_id: String,
    pub hostname: String,
    /// How a trial boot starts on a Raspberry Pi 5 (its kernel decides); absent on UEFI boards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pi_trial_start: Option<crate::boot_control::PiTrialStart>,
}

impl ImageInfo {
    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<ImageInfo, Error> {
        let info: ImageInfo = toml::from_str(text).map_err(|err| Error::ImageInfo {
            message: err.to_string().trim_end().replace('\n', " "),
        })?;
        if !is_host_name(&info.hostname) {
            return Err(Error::ImageInfo {
                message: format!("hostname {:?} is not a valid host name", info.hostname),
            });
        }
        Ok(info)
    }
}

/// An RFC 1123 label: 1 to 63 lower-case letters, digits or '-', not at either end. The
/// builder refuses a recipe whose host name is not one; PID 1 refuses to set one.
pub fn is_host_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ImageInfo {
        ImageInfo {
            name: "x86-64-qemu".into(),
            board: "x86-64".into(),
            version: "0.1.0".into(),
            build_id: "0123456789abcdef".into(),
            hostname: "carapace".into(),
            pi_trial_start: None,
        }
    }

    #[test]
    fn round_trips() {
        let text = info().render();
        assert!(text.contains("hostname = \"carapace\""), "{text}");
        assert_eq!(ImageInfo::parse(&text).unwrap(), info());
        let pi = ImageInfo {
            pi_trial_start: Some(crate::boot_control::PiTrialStart::Kexec),
            ..info()
        };
        let text = pi.render();
        assert!(text.contains("pi_trial_start = \"kexec\""), "{text}");
        assert_eq!(ImageInfo::parse(&text).unwrap(), pi);
    }

    #[test]
    fn a_bad_host_name_or_field_is_named() {
        let mut bad = info();
        bad.hostname = "box\nname".into();
        let err = ImageInfo::parse(&bad.render()).unwrap_err().to_string();
        assert!(err.contains("hostname"), "{err}");
        let err = ImageInfo::parse("name = \"x\"").unwrap_err().to_string();
        assert!(err.contains("missing field"), "{err}");
    }

    #[test]
    fn host_names_are_rfc_1123_labels() {
        for good in ["carapace", "box-1", "a"] {
            assert!(is_host_name(good), "{good}");
        }
        for bad in ["", "-box", "box-", "Box", "box.local", &"a".repeat(64)] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }
}
