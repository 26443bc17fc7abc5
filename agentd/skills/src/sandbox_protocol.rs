//! What agentd and carapace-skillhost (the process that runs a skill's WebAssembly) say to each
//! other: one JSON object per line, over the service's socket (handoff.rs says how a call
//! starts) or a directly started host's stdin and stdout. agentd sends a
//! [`ToHost::Call`]; the host says [`FromHost::Running`] once the component is compiled and
//! loaded (the call's deadline runs from there), [`FromHost::Fetch`] whenever the skill asks for
//! HTTP (agentd checks and makes the request, then sends [`ToHost::Fetched`]), and ends with one
//! [`FromHost::Finished`]. Outside calls, agentd has the service compile a component ahead of
//! its first call ([`ToHost::Prepare`]), drop compiled code no skill on the box needs
//! ([`ToHost::Prune`]) and a removed skill's scratch files ([`ToHost::Forget`]). The skill host
//! itself opens no socket.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The world skill components are built against and run in (wit/skill.wit).
pub const WIT: &str = include_str!("../wit/skill.wit");
/// Its name inside the WIT package.
pub const WIT_WORLD: &str = "skill";

/// What bounds one call. The defaults suit a small helper skill on a 2 GB box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory the component may grow to, all memories together.
    pub memory_bytes: u64,
    /// Wall time from the call's start; time spent waiting on HTTP counts.
    pub deadline_ms: u64,
    /// The most any one file in the scratch directory may grow to.
    pub scratch_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 128 << 20,
            deadline_ms: 10_000,
            scratch_file_bytes: 16 << 20,
        }
    }
}

/// One tool call into one skill's component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The skill's name, for messages.
    pub skill: String,
    /// The component (.wasm), read only. The skill host service is handed it open instead
    /// (handoff.rs) and takes this only for messages.
    pub component: PathBuf,
    /// Where compiled machine code for components is kept between calls. Written only before
    /// the skill's code starts; read only afterwards. The service keeps its own, in its state
    /// directory, in place of this one and of `scratch`.
    pub compiled_dir: PathBuf,
    /// The skill's own directory, the only one it sees (as `/scratch`).
    pub scratch: PathBuf,
    pub limits: Limits,
    /// Hosts the skill declared and the owner approved, for its HTTP requests.
    pub hosts: Vec<String>,
    pub tool: String,
    /// The model's arguments, a JSON object as text.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToHost {
    Call(Box<Call>),
    Fetched(Result<HttpResponse, String>),
    /// The skill left the box: the service removes its scratch directory (in the service's
    /// state directory, which agentd cannot touch) and says Finished.
    Forget {
        skill: String,
    },
    /// Compile the component handed over with this line (handoff.rs), if it is not compiled
    /// yet, so the skill's first call need not wait for it: agentd asks after an install and at
    /// its start. Answered with [`FromHost::Prepared`], or Finished with the reason it cannot.
    Prepare {
        skill: String,
    },
    /// Remove the compiled code of every component but these (their sha256, hex), and all of
    /// another engine's (an update brought another wasmtime): agentd names the components of
    /// the skills on the box after each install or removal and at its start. Answered with
    /// [`FromHost::Pruned`].
    Prune {
        keep: Vec<String>,
    },
}

/// A component's sha256 (hex): the service names its compiled code by it, and agentd names
/// the components to keep in a [`ToHost::Prune`] by it.
pub fn component_digest(component: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(component))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromHost {
    /// The component is loaded and confined; its code starts now. `compiled` says whether it
    /// had to be compiled first (the first call after it was installed).
    Running {
        compiled: bool,
    },
    Fetch(HttpRequest),
    Finished(Outcome),
    /// The answer to [`ToHost::Prepare`]: the component's compiled code is there, and whether
    /// it had to be compiled now.
    Prepared {
        compiled: bool,
    },
    /// The answer to [`ToHost::Prune`]: how many files went.
    Pruned {
        removed: u64,
    },
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The tool's answer for the model.
    Answer(String),
    /// The tool's own error message for the model.
    ToolError(String),
    /// The host stopped the skill; it said nothing.
    Stopped(Stop),
}

/// Why the host stopped a skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// It ran past its deadline.
    Deadline { ms: u64 },
    /// It tried to grow its memory past the limit.
    MemoryLimit { bytes: u64 },
    /// It crashed (a WebAssembly trap: unreachable, out of bounds, a Python exception it did
    /// not catch); `detail` has the trap and what the skill wrote to stderr.
    Crashed { detail: String },
    /// The component could not be loaded or does not export the skill world's tool interface.
    Unusable { detail: String },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Deadline { ms } => write!(f, "stopped: it ran past its deadline of {ms} ms"),
            Stop::MemoryLimit { bytes } => write!(
                f,
                "stopped: it tried to use more than its memory limit of {} MiB",
                bytes >> 20
            ),
            Stop::Crashed { detail } => write!(f, "crashed: {detail}"),
            Stop::Unusable { detail } => write!(f, "could not be run: {detail}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

/// Whether `url` is HTTPS to one of `hosts` (exact names, compared without case). Both sides
/// check: the host before it asks, agentd before it sends.
pub fn url_allowed(url: &str, hosts: &[String]) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|err| format!("{url} is not a URL: {err}"))?;
    if parsed.scheme() != "https" {
        return Err(format!("{url}: only https:// is allowed"));
    }
    let host = parsed.host_str().unwrap_or_default();
    if hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        Ok(())
    } else {
        Err(format!(
            "{host} is not one of the hosts this skill was approved for ({})",
            if hosts.is_empty() {
                "none".to_string()
            } else {
                hosts.join(", ")
            }
        ))
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_an_approved_host_is_allowed() {
        let hosts = vec!["api.example.org".to_string()];
        assert!(url_allowed("https://API.example.org/v1?q=1", &hosts).is_ok());
        let err = url_allowed("https://evil.example.net/", &hosts).unwrap_err();
        assert!(
            err.starts_with("evil.example.net is not one of the hosts"),
            "{err}"
        );
        let err = url_allowed("http://api.example.org/", &hosts).unwrap_err();
        assert!(err.ends_with("only https:// is allowed"), "{err}");
        let err = url_allowed("https://api.example.org.evil.net/", &hosts).unwrap_err();
        assert!(err.contains("is not one of the hosts"), "{err}");
        assert!(url_allowed("not a url", &hosts).is_err());
    }

    #[test]
    fn messages_round_trip_as_one_line_of_json_each() {
        let message = FromHost::Fetch(HttpRequest {
            method: "GET".into(),
            url: "https://api.example.org/".into(),
            headers: vec![("accept".into(), "application/json".into())],
            body: vec![0, 1, 2, 255],
        });
        let line = serde_json::to_string(&message).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains("\"body\":\"AAEC/w==\""), "{line}");
        assert_eq!(serde_json::from_str::<FromHost>(&line).unwrap(), message);
    }
}
