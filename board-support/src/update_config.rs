//! /etc/carapace/update.toml: where the box's update service looks for updates and when. The
//! builder writes it from the recipe's `[update]` section with `render`, the update service
//! reads it with `parse`: one definition and one check on both sides, like image.toml.
//!
//! ```toml
//! server = "https://updates.example.com/x86-64"   # the board's repository, https only
//! channel = "stable"                               # channels/<channel>.json there
//! check_hours = 24                                 # between two checks, 1 to 720
//! quiet_hour = 3                                   # UTC hour a trial reboot may happen in
//! max_kib_per_s = 512                              # download cap (absent: none)
//! trial_stable_s = 60                              # a trial's stability window, 25 to 120
//! ```

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where the update settings live on the verified root.
pub const UPDATE_CONFIG_PATH: &str = "/etc/carapace/update.toml";
pub const DEFAULT_CHANNEL: &str = "stable";
pub const DEFAULT_CHECK_HOURS: u32 = 24;
/// A box that checks less than monthly would sit on a known hole for too long.
pub const MAX_CHECK_HOURS: u32 = 720;
/// 03:00 UTC: night in Europe and Asia, evening in the Americas.
pub const DEFAULT_QUIET_HOUR: u8 = 3;
/// How long agentd must run without a restart, and a trial boot be watched, before updated
/// commits it.
pub const DEFAULT_TRIAL_STABLE_S: u32 = 60;
/// The window must outlast the hardware watchdog with a margin (PID 1 stops petting it when
/// it finds a service unhealthy, and the box resets within its timeout): a box that would be
/// reset must never commit first.
pub const MIN_TRIAL_STABLE_S: u32 = crate::box_health::HARDWARE_WATCHDOG_S + 5;
/// Well inside updated's 180 s health deadline, or a healthy trial could never commit.
pub const MAX_TRIAL_STABLE_S: u32 = 120;
/// Long enough for any real repository URL; bounds what a reader keeps.
const MAX_SERVER_LEN: usize = 512;
const NAMES_ONLY: &str = "the box reaches only allowlisted names through its DNS firewall, so \
     give the server's host name";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// The https base URL of the board's repository, without a trailing '/', e.g.
    /// `https://updates.example.com/x86-64`. The host must be a name, not an address: the box
    /// reaches only names on the allowlist, through its DNS firewall.
    pub server: String,
    /// The channel the box follows.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// Hours between two checks.
    #[serde(default = "default_check_hours")]
    pub check_hours: u32,
    /// The hour (UTC, 0 to 23) in which the box may reboot into a downloaded update.
    #[serde(default = "default_quiet_hour")]
    pub quiet_hour: u8,
    /// The download's bandwidth cap in KiB/s; none when absent (a box on a metered or shared
    /// link should not take all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kib_per_s: Option<u32>,
    /// Seconds agentd must run without a restart, and a trial boot be watched, before the
    /// trial is committed: `MIN_TRIAL_STABLE_S` to `MAX_TRIAL_STABLE_S`.
    #[serde(default = "default_trial_stable_s")]
    pub trial_stable_s: u32,
}

fn default_channel() -> String {
    DEFAULT_CHANNEL.to_owned()
}

fn default_check_hours() -> u32 {
    DEFAULT_CHECK_HOURS
}

fn default_quiet_hour() -> u8 {
    DEFAULT_QUIET_HOUR
}

fn default_trial_stable_s() -> u32 {
    DEFAULT_TRIAL_STABLE_S
}

impl UpdateConfig {
    /// The settings for `server` with every other field at its default.
    pub fn new(server: impl Into<String>) -> UpdateConfig {
        UpdateConfig {
            server: server.into(),
            channel: default_channel(),
            check_hours: DEFAULT_CHECK_HOURS,
            quiet_hour: DEFAULT_QUIET_HOUR,
            max_kib_per_s: None,
            trial_stable_s: DEFAULT_TRIAL_STABLE_S,
        }
    }

    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<UpdateConfig, Error> {
        let config: UpdateConfig =
            toml::from_str(text).map_err(|err| Error::UpdateConfigSyntax {
                message: err.to_string().trim_end().replace('\n', " "),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Every field's rule; the builder runs it on the recipe's values, `parse` on the file's.
    pub fn validate(&self) -> Result<(), Error> {
        self.server_host()?;
        if let Err(problem) = check_channel(&self.channel) {
            return Err(field("channel", &self.channel, problem));
        }
        if !(1..=MAX_CHECK_HOURS).contains(&self.check_hours) {
            return Err(field(
                "check_hours",
                &self.check_hours.to_string(),
                format!("must be 1 to {MAX_CHECK_HOURS} (hours between two checks)"),
            ));
        }
        if self.max_kib_per_s == Some(0) {
            return Err(field(
                "max_kib_per_s",
                "0",
                "must be at least 1 KiB/s; leave it out for no cap".to_owned(),
            ));
        }
        if !(MIN_TRIAL_STABLE_S..=MAX_TRIAL_STABLE_S).contains(&self.trial_stable_s) {
            return Err(field(
                "trial_stable_s",
                &self.trial_stable_s.to_string(),
                format!(
                    "must be {MIN_TRIAL_STABLE_S} to {MAX_TRIAL_STABLE_S} s: longer than the \
                     hardware watchdog's {} s with a margin, so a box PID 1 finds unhealthy is \
                     reset before it could commit, and well inside the trial's health deadline",
                    crate::box_health::HARDWARE_WATCHDOG_S
                ),
            ));
        }
        if self.quiet_hour > 23 {
            return Err(field(
                "quiet_hour",
                &self.quiet_hour.to_string(),
                "must be an hour of the day in UTC, 0 to 23".to_owned(),
            ));
        }
        Ok(())
    }

    /// The server's host name and TCP port (443 unless the URL names one): what the firewall
    /// must let the update service reach.
    pub fn server_host(&self) -> Result<(String, u16), Error> {
        parse_server(&self.server).map_err(|problem| field("server", &self.server, problem))
    }

    /// The URL of `relative` (a repository path such as `channels/stable.json`) on the server.
    pub fn url(&self, relative: &str) -> String {
        format!("{}/{}", self.server, relative.trim_start_matches('/'))
    }
}

/// A channel name: it becomes a file name in the repository (`channels/<channel>.json`).
/// carapace-update checks channel pointers with this same rule.
pub fn check_channel(channel: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&channel.len())
        && channel.starts_with(|c: char| c.is_ascii_lowercase())
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(format!(
            "channel {channel:?} must be 1 to 32 lower-case letters, digits or '-', starting \
             with a letter"
        ));
    }
    Ok(())
}

/// `https://<host>[:<port>][/<path>]`, strictly: one spelling per repository, nothing a URL
/// parser elsewhere could read differently (no user, query, fragment, `.` or `..`, empty or
/// trailing path parts).
fn parse_server(server: &str) -> Result<(String, u16), String> {
    if server.len() > MAX_SERVER_LEN {
        return Err(format!("is longer than {MAX_SERVER_LEN} characters"));
    }
    let rest = server
        .strip_prefix("https://")
        .ok_or("must start with https:// (updates are fetched over TLS only)")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("must name the host without a user or password".to_owned());
    }
    if authority.starts_with('[') {
        return Err(format!("host {authority:?} is an IP address; {NAMES_ONLY}"));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, 443),
    };
    check_host(host)?;
    if !path.is_empty() {
        check_path(path)?;
    }
    Ok((host.to_owned(), port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    port.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("port {port:?} must be a number from 1 to 65535"))
}

/// A DNS name in lower case: labels of 1 to 63 letters, digits and '-', not at either end, and
/// a last label that is not all digits (so no IPv4 address; '[' already rules out IPv6).
fn check_host(host: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "host {host:?} must be a host name in lower case (letters, digits, '-' and '.')"
        ));
    }
    if host
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("host {host:?} is an IP address; {NAMES_ONLY}"));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if path.ends_with('/') {
        return Err(
            "must not end with '/': give the repository's base URL, the box adds \
             /channels/... to it"
                .to_owned(),
        );
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !path.split('/').skip(1).all(part_ok) {
        return Err(format!(
            "path {path:?} must be plain names (letters, digits, '-', '.', '_', '~') between \
             single '/', with no query or fragment"
        ));
    }
    Ok(())
}

fn field(name: &'static str, value: &str, problem: String) -> Error {
    Error::UpdateConfigField {
        field: name,
        value: value.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "https://updates.example.com/x86-64";

    #[test]
    fn round_trips_and_fills_in_the_defaults() {
        let config = UpdateConfig {
            server: SERVER.into(),
            channel: "beta".into(),
            check_hours: 6,
            quiet_hour: 0,
            max_kib_per_s: Some(256),
            trial_stable_s: 30,
        };
        let text = config.render();
        assert!(text.contains("channel = \"beta\""), "{text}");
        assert_eq!(UpdateConfig::parse(&text).unwrap(), config);
        let parsed = UpdateConfig::parse(&format!("server = \"{SERVER}\"\n")).unwrap();
        assert_eq!(parsed, UpdateConfig::new(SERVER));
        assert_eq!(
            (
                parsed.channel.as_str(),
                parsed.check_hours,
                parsed.quiet_hour,
                parsed.trial_stable_s
            ),
            ("stable", 24, 3, 60)
        );
    }

    #[test]
    fn the_server_gives_the_host_and_port_to_allow() {
        let host = |server: &str| UpdateConfig::new(server).server_host().unwrap();
        assert_eq!(host(SERVER), ("updates.example.com".into(), 443));
        assert_eq!(
            host("https://updates.example.com"),
            ("updates.example.com".into(), 443)
        );
        assert_eq!(
            host("https://cdn.example.org:8443/fleet/x86-64"),
            ("cdn.example.org".into(), 8443)
        );
        assert_eq!(host("https://updates.test"), ("updates.test".into(), 443));
    }

    #[test]
    fn urls_join_the_base_and_the_repository_path() {
        let config = UpdateConfig::new(SERVER);
        assert_eq!(
            config.url("channels/stable.json"),
            "https://updates.example.com/x86-64/channels/stable.json"
        );
        assert_eq!(
            config.url("/keys.json"),
            "https://updates.example.com/x86-64/keys.json"
        );
    }

    #[test]
    fn bad_servers_are_refused_with_the_reason() {
        for (server, reason) in [
            ("http://updates.example.com", "https://"),
            ("updates.example.com", "https://"),
            ("https://", "host"),
            ("https://Updates.example.com", "lower case"),
            ("https://user:pw@updates.example.com", "without a user"),
            ("https://10.0.0.1/x86-64", "IP address"),
            ("https://[::1]/x86-64", "IP address"),
            ("https://updates.example.com:0", "port"),
            ("https://updates.example.com:65536", "port"),
            ("https://updates.example.com:+443", "port"),
            ("https://updates.example.com:", "port"),
            ("https://updates.example.com/", "must not end with '/'"),
            (
                "https://updates.example.com/x86-64/",
                "must not end with '/'",
            ),
            ("https://updates.example.com/a//b", "plain names"),
            ("https://updates.example.com/a/../b", "plain names"),
            ("https://updates.example.com/a?b=c", "query"),
            ("https://updates.example.com/a#b", "fragment"),
            ("https://updates.example.com/a b", "plain names"),
            ("https://-bad.example.com", "host"),
            ("https://bad..example.com", "host"),
        ] {
            let err = UpdateConfig::new(server)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`server`") && err.contains(reason),
                "{server}: {err}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_SERVER_LEN));
        let err = UpdateConfig::new(long).validate().unwrap_err().to_string();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn other_fields_are_checked_and_named() {
        let with = |extra: &str| format!("server = \"{SERVER}\"\n{extra}\n");
        for (extra, named) in [
            ("channel = \"Stable\"", "`channel`"),
            ("channel = \"\"", "`channel`"),
            ("check_hours = 0", "`check_hours`"),
            ("check_hours = 721", "`check_hours`"),
            ("quiet_hour = 24", "`quiet_hour`"),
            ("quiet_hour = -1", "quiet_hour"),
            ("check_hour = 3", "check_hour"),
            ("trial_stable_s = 24", "`trial_stable_s`"),
            ("trial_stable_s = 0", "`trial_stable_s`"),
            ("trial_stable_s = 121", "`trial_stable_s`"),
        ] {
            let err = UpdateConfig::parse(&with(extra)).unwrap_err().to_string();
            assert!(
                err.contains(named) && err.contains("update.toml"),
                "{extra}: {err}"
            );
        }
        for extra in [
            "check_hours = 1",
            "check_hours = 720",
            "quiet_hour = 23",
            "trial_stable_s = 25",
            "trial_stable_s = 120",
        ] {
            UpdateConfig::parse(&with(extra)).unwrap();
        }
        let err = UpdateConfig::parse("channel = \"stable\"\n").unwrap_err();
        assert!(err.to_string().contains("server"), "{err}");
    }
}
