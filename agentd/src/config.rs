//! What PID 1 tells agentd through its environment (docs/boot-contract.md, "Service ↔ PID 1").

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use carapace_http::Url;

use crate::error::Error;
use crate::local_inference::URL_ENV as LOCAL_INFERENCE_URL;
use crate::netd_control::SOCKET_ENV as NETD_CONTROL_SOCKET;

const STATE_DIRECTORY: &str = "STATE_DIRECTORY";
const RUNTIME_DIRECTORY: &str = "RUNTIME_DIRECTORY";
const NOTIFY_FD: &str = "NOTIFY_FD";
const SKILLS_DIRECTORY: &str = "SKILLS_DIRECTORY";
const SKILLHOST_PROGRAM: &str = "SKILLHOST_PROGRAM";
const SKILLHOST_SOCKET: &str = "SKILLHOST_SOCKET";
const UPDATE_ROOT_KEY: &str = "UPDATE_ROOT_KEY";
const UPDATE_KEY_LIST: &str = "UPDATE_KEY_LIST";
const GITHUB_API_URL: &str = "GITHUB_API_URL";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Persistent, private to agentd: /data/agentd.
    pub state_dir: PathBuf,
    /// Cleared every boot: /run/agentd.
    pub runtime_dir: PathBuf,
    /// The pipe to PID 1; absent when agentd is run by hand.
    pub notify_fd: Option<RawFd>,
    /// netd's control socket: /run/netd/control.sock, another path only in tests (a fake
    /// netd), through NETD_CONTROL_SOCKET.
    pub netd_control: PathBuf,
    /// The local inference engine's API (memories' embeddings):
    /// `http://` + board_support::local_inference::API_ADDRESS, another loopback address only
    /// in tests (an engine on a free port), through LOCAL_INFERENCE_URL.
    pub inference_url: Url,
    /// The skills in the image: carapace_skills::SKILLS_DIR, another folder only in tests,
    /// through SKILLS_DIRECTORY.
    pub skills_dir: PathBuf,
    /// The program that runs skills' code: carapace_skills::SKILLHOST_PROGRAM, another only in
    /// tests (the workspace's build), through SKILLHOST_PROGRAM. An image that has it runs it
    /// as a service.
    pub skillhost: PathBuf,
    /// That service's socket: carapace_skills::SKILLHOST_SOCKET, another only in tests (a
    /// service they start), through SKILLHOST_SOCKET.
    pub skillhost_socket: PathBuf,
    /// The image's update keys, which signed skill packs are checked with:
    /// carapace_update::layout's IMAGE_ROOT_KEY and IMAGE_KEY_LIST, others only in tests.
    pub update_keys: UpdateKeys,
    /// GitHub's API for `/install_skill`'s folder links: skill_fetch::GITHUB_API, another (a
    /// fake on loopback) only in tests.
    pub github_api: Url,
}

/// Where the image's update root key and key list are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateKeys {
    pub root_key: PathBuf,
    pub key_list: PathBuf,
}

impl UpdateKeys {
    /// The keys, read now (they are small; an image without `[update]` has none).
    pub fn load(&self) -> Result<carapace_update::Trust, carapace_update::Error> {
        carapace_update::Trust::load(&self.root_key, &self.key_list)
    }
}

impl Config {
    pub fn from_env() -> Result<Config, Error> {
        Config::from_lookup(|name| std::env::var_os(name))
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, Error> {
        let dir = |name: &'static str| match lookup(name) {
            Some(value) if !value.is_empty() => Ok(PathBuf::from(value)),
            _ => Err(Error::MissingEnv { name }),
        };
        Ok(Config {
            state_dir: dir(STATE_DIRECTORY)?,
            runtime_dir: dir(RUNTIME_DIRECTORY)?,
            notify_fd: lookup(NOTIFY_FD)
                .map(|value| notify_fd(&value))
                .transpose()?,
            netd_control: lookup(NETD_CONTROL_SOCKET)
                .filter(|value| !value.is_empty())
                .map_or_else(
                    || PathBuf::from(board_support::netd_control::SOCKET_PATH),
                    PathBuf::from,
                ),
            inference_url: match lookup(LOCAL_INFERENCE_URL).filter(|value| !value.is_empty()) {
                Some(value) => inference_url(&value)?,
                None => default_inference_url(),
            },
            skills_dir: lookup(SKILLS_DIRECTORY)
                .filter(|value| !value.is_empty())
                .map_or_else(|| PathBuf::from(carapace_skills::SKILLS_DIR), PathBuf::from),
            skillhost: lookup(SKILLHOST_PROGRAM)
                .filter(|value| !value.is_empty())
                .map_or_else(
                    || PathBuf::from(carapace_skills::SKILLHOST_PROGRAM),
                    PathBuf::from,
                ),
            skillhost_socket: lookup(SKILLHOST_SOCKET)
                .filter(|value| !value.is_empty())
                .map_or_else(
                    || PathBuf::from(carapace_skills::SKILLHOST_SOCKET),
                    PathBuf::from,
                ),
            github_api: match lookup(GITHUB_API_URL).filter(|value| !value.is_empty()) {
                Some(value) => github_api(&value)?,
                None => Url::parse(crate::skill_fetch::GITHUB_API)
                    .expect("GITHUB_API is a URL (the tests below say so)"),
            },
            update_keys: UpdateKeys {
                root_key: lookup(UPDATE_ROOT_KEY)
                    .filter(|value| !value.is_empty())
                    .map_or_else(
                        || PathBuf::from(carapace_update::layout::IMAGE_ROOT_KEY),
                        PathBuf::from,
                    ),
                key_list: lookup(UPDATE_KEY_LIST)
                    .filter(|value| !value.is_empty())
                    .map_or_else(
                        || PathBuf::from(carapace_update::layout::IMAGE_KEY_LIST),
                        PathBuf::from,
                    ),
            },
        })
    }
}

fn default_inference_url() -> Url {
    let address = board_support::local_inference::API_ADDRESS;
    // A constant "127.0.0.1:port": always a URL (the tests below say so).
    Url::parse(&format!("http://{address}")).expect("API_ADDRESS is an IP address and port")
}

/// https, or plain http to this box itself (a fake in tests).
fn github_api(value: &OsString) -> Result<Url, Error> {
    carapace_http::checked_url(&value.to_string_lossy()).map_err(|_| Error::BadEnv {
        name: GITHUB_API_URL,
        value: value.to_string_lossy().into_owned(),
        reason: "not an https:// URL, or http:// on this box",
    })
}

/// Plain http to this box only: nothing sent to the engine may leave it.
fn inference_url(value: &OsString) -> Result<Url, Error> {
    let bad = |reason| Error::BadEnv {
        name: LOCAL_INFERENCE_URL,
        value: value.to_string_lossy().into_owned(),
        reason,
    };
    let text = value.to_str().ok_or_else(|| bad("not UTF-8"))?;
    // checked_url lets plain http reach loopback only.
    match carapace_http::checked_url(text) {
        Ok(url) if url.scheme() == "http" => Ok(url),
        _ => Err(bad(
            "not an http:// URL on this box (e.g. http://127.0.0.1:8089): the engine listens on loopback only",
        )),
    }
}

fn notify_fd(value: &OsString) -> Result<RawFd, Error> {
    let bad = |reason| Error::BadEnv {
        name: NOTIFY_FD,
        value: value.to_string_lossy().into_owned(),
        reason,
    };
    let fd: RawFd = value
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not a file descriptor number"))?;
    // Notifications written to stdin/stdout/stderr would end up in the log as garbage.
    if fd < 3 {
        return Err(bad("fds 0, 1 and 2 are stdio, not the notification pipe"));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn reads_the_contract_variables() {
        let got = config(&[
            (STATE_DIRECTORY, "/data/agentd"),
            (RUNTIME_DIRECTORY, "/run/agentd"),
            (NOTIFY_FD, "3"),
        ])
        .unwrap();
        assert_eq!(
            got,
            Config {
                state_dir: "/data/agentd".into(),
                runtime_dir: "/run/agentd".into(),
                notify_fd: Some(3),
                netd_control: "/run/netd/control.sock".into(),
                inference_url: Url::parse("http://127.0.0.1:8089").unwrap(),
                skills_dir: "/usr/share/carapace/skills".into(),
                skillhost: "/usr/bin/carapace-skillhost".into(),
                skillhost_socket: "/run/skillhost/calls.sock".into(),
                github_api: Url::parse("https://api.github.com").unwrap(),
                update_keys: UpdateKeys {
                    root_key: "/etc/carapace/update-root.pub".into(),
                    key_list: "/etc/carapace/update-keys.json".into(),
                },
            }
        );
        let got = config(&[
            (STATE_DIRECTORY, "/s"),
            (RUNTIME_DIRECTORY, "/r"),
            (NETD_CONTROL_SOCKET, "/tmp/fake-netd.sock"),
        ])
        .unwrap();
        assert_eq!(got.netd_control, PathBuf::from("/tmp/fake-netd.sock"));
    }

    #[test]
    fn the_inference_url_may_be_another_loopback_address_only() {
        let with = |url| {
            config(&[
                (STATE_DIRECTORY, "/s"),
                (RUNTIME_DIRECTORY, "/r"),
                (LOCAL_INFERENCE_URL, url),
            ])
        };
        assert_eq!(
            with("http://127.0.0.1:40001")
                .unwrap()
                .inference_url
                .as_str(),
            "http://127.0.0.1:40001/"
        );
        assert_eq!(
            with("").unwrap().inference_url.as_str(),
            "http://127.0.0.1:8089/"
        );
        for url in [
            "http://10.0.0.2:8089",
            "https://127.0.0.1:8089",
            "127.0.0.1:8089",
        ] {
            let err = with(url).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadEnv {
                        name: LOCAL_INFERENCE_URL,
                        ..
                    }
                ),
                "{url}: {err}"
            );
            assert!(err.to_string().contains("loopback only"), "{err}");
        }
    }

    #[test]
    fn notify_fd_is_optional() {
        let got = config(&[(STATE_DIRECTORY, "/s"), (RUNTIME_DIRECTORY, "/r")]).unwrap();
        assert_eq!(got.notify_fd, None);
    }

    #[test]
    fn missing_directories_are_named() {
        let err = config(&[(RUNTIME_DIRECTORY, "/r")]).unwrap_err();
        assert!(err.to_string().contains(STATE_DIRECTORY), "{err}");
        let err = config(&[(STATE_DIRECTORY, "/s"), (RUNTIME_DIRECTORY, "")]).unwrap_err();
        assert!(err.to_string().contains(RUNTIME_DIRECTORY), "{err}");
    }

    #[test]
    fn bad_notify_fd() {
        for value in ["three", "-1", "1", ""] {
            let err = config(&[
                (STATE_DIRECTORY, "/s"),
                (RUNTIME_DIRECTORY, "/r"),
                (NOTIFY_FD, value),
            ])
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadEnv {
                        name: NOTIFY_FD,
                        ..
                    }
                ),
                "{value}: {err}"
            );
        }
    }
}
