//! netd's control protocol, one definition for netd (the server) and agentd (the client).
//! agentd runs settings transactions but cannot write netd's files or signal it (another
//! uid), so a network change goes through $RUNTIME_DIRECTORY/control.sock: netd answers only
//! the uids given with `--controller <uid>` and closes on everyone else.
//!
//! One JSON request line, one JSON reply line, then netd closes:
//!
//! ```text
//! {"op":"wifi_trial","networks":[{"ssid":"home","passphrase":"…"}],"revert_after_s":60}
//! {"op":"commit"}
//! {"op":"revert"}
//! {"op":"allow","name":"mcp.example.net","port":443}
//! {"op":"disallow","name":"mcp.example.net","port":443}
//!
//! {"ok":true}
//! {"ok":false,"error":"what is wrong and what to do"}
//! ```
//!
//! `wifi_trial` puts the networks in force at once and keeps the previous ones as the revert
//! point; unless `commit` comes within `revert_after_s` seconds, netd goes back by itself (also
//! after a restart of netd or of the box). `revert` goes back at once. A trial on top of a
//! pending trial keeps the first revert point. An empty list of networks means the image's
//! own networks. No reply and no netd log line ever carries a passphrase.

use serde::{Deserialize, Serialize};

use crate::wifi::{WifiNetwork, list_problem};

/// Where netd listens (its runtime directory is /run/netd).
pub const SOCKET_PATH: &str = "/run/netd/control.sock";
pub const SOCKET_NAME: &str = "control.sock";
/// The longest trial: a settings transaction checks its links for about half a minute.
pub const MAX_REVERT_AFTER_S: u64 = 600;
/// The longest request line netd reads: room for many networks, not for a flood.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    WifiTrial {
        networks: Vec<WifiNetwork>,
        revert_after_s: u64,
    },
    // Empty braces, not unit variants: serde then refuses unknown fields here too.
    Commit {},
    Revert {},
    /// Adds one host (an exact name) at one port to the owner's allowlist, for good: a remote
    /// service the owner added in the chat (an MCP server). Refused while a Wi-Fi trial is
    /// pending, whose revert would drop it.
    Allow {
        name: String,
        port: u16,
    },
    /// Takes one host at one port back out of the owner's allowlist (the skill or server that
    /// needed it left the box), and closes what the allow sets opened: netd flushes them and
    /// its DNS cache, so every other allowed name opens again at its next lookup. The image's
    /// own entries cannot be taken out. Refused during a Wi-Fi trial, as Allow is.
    Disallow {
        name: String,
        port: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            error: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(text.into()),
        }
    }

    /// The line netd writes, newline included.
    pub fn to_line(&self) -> String {
        // A bool and a string: encoding cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// The outcome as a result: the error text when netd refused.
    pub fn into_result(self) -> Result<(), String> {
        match (self.ok, self.error) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error),
            (false, None) => Err("netd refused without saying why".into()),
        }
    }
}

impl Request {
    /// The line agentd writes, newline included.
    pub fn to_line(&self) -> String {
        // Strings, numbers and lists: encoding cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads a request line and checks it, as netd does before acting on it. The error says
    /// what to send instead; it never quotes the request, which may carry a passphrase.
    pub fn parse(line: &str) -> Result<Request, String> {
        let request: Request = serde_json::from_str(line.trim_end()).map_err(|error| {
            // serde quotes string values it did not expect ("invalid type: string "…""):
            // those messages are left out; field and variant names come in backticks.
            let detail = error.to_string();
            let detail = if detail.contains('"') {
                String::new()
            } else {
                format!(": {detail}")
            };
            format!(
                "not a request of netd's control protocol{detail}; send one JSON line: \
                 {{\"op\":\"wifi_trial\",\"networks\":[{{\"ssid\":…,\"passphrase\":…}}],\
                 \"revert_after_s\":N}}, {{\"op\":\"commit\"}}, {{\"op\":\"revert\"}}, \
                 {{\"op\":\"allow\",\"name\":…,\"port\":N}} or \
                 {{\"op\":\"disallow\",\"name\":…,\"port\":N}}"
            )
        })?;
        request.check()?;
        Ok(request)
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        if let Request::WifiTrial {
            networks,
            revert_after_s,
        } = self
        {
            if !(1..=MAX_REVERT_AFTER_S).contains(revert_after_s) {
                return Err(format!(
                    "revert_after_s is {revert_after_s}; give 1 to {MAX_REVERT_AFTER_S} seconds"
                ));
            }
            if let Some((index, problem)) = list_problem(networks) {
                return Err(format!(
                    "networks[{index}].{}: {}",
                    problem.field, problem.problem
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "correct horse battery";

    #[test]
    fn requests_round_trip_in_the_documented_shape() {
        let trial = Request::WifiTrial {
            networks: vec![WifiNetwork {
                ssid: "home".into(),
                passphrase: SECRET.into(),
            }],
            revert_after_s: 60,
        };
        let line = trial.to_line();
        assert_eq!(
            line,
            format!(
                "{{\"op\":\"wifi_trial\",\"networks\":[{{\"ssid\":\"home\",\"passphrase\":\
                 \"{SECRET}\"}}],\"revert_after_s\":60}}\n"
            )
        );
        assert_eq!(Request::parse(&line).unwrap(), trial);
        assert_eq!(
            Request::parse("{\"op\":\"commit\"}").unwrap(),
            Request::Commit {}
        );
        assert_eq!(
            Request::parse("{\"op\":\"revert\"}\n").unwrap(),
            Request::Revert {}
        );
        assert!(!format!("{trial:?}").contains(SECRET));
        assert_eq!(Request::Commit {}.to_line(), "{\"op\":\"commit\"}\n");
        for (op, line) in [
            (
                "allow",
                "{\"op\":\"allow\",\"name\":\"mcp.example.net\",\"port\":443}\n",
            ),
            (
                "disallow",
                "{\"op\":\"disallow\",\"name\":\"mcp.example.net\",\"port\":443}\n",
            ),
        ] {
            let (name, port) = ("mcp.example.net".to_string(), 443);
            let request = match op {
                "allow" => Request::Allow { name, port },
                _ => Request::Disallow { name, port },
            };
            assert_eq!(request.to_line(), line);
            assert_eq!(Request::parse(line).unwrap(), request);
        }
    }

    #[test]
    fn bad_requests_say_what_to_send_and_never_echo_a_value() {
        let cases = [
            ("", "not a request"),
            ("{\"op\":\"reboot\"}", "unknown variant `reboot`"),
            ("{\"op\":\"commit\",\"now\":true}", "unknown field `now`"),
            (
                "{\"op\":\"wifi_trial\",\"networks\":[],\"revert_after_s\":0}",
                "revert_after_s is 0; give 1 to 600",
            ),
            (
                "{\"op\":\"wifi_trial\",\"networks\":[],\"revert_after_s\":601}",
                "give 1 to 600",
            ),
            (
                "{\"op\":\"wifi_trial\",\"networks\":[{\"ssid\":\"a\",\"passphrase\":\"short\"}],\
                 \"revert_after_s\":9}",
                "networks[0].passphrase",
            ),
            (
                "{\"op\":\"wifi_trial\",\"networks\":[{\"ssid\":\"\"}],\"revert_after_s\":9}",
                "networks[0].ssid",
            ),
        ];
        for (line, wanted) in cases {
            let error = Request::parse(line).unwrap_err();
            assert!(error.contains(wanted), "{line}: {error}");
        }
        // The passphrase in a place where a number belongs is not quoted back.
        let line =
            format!("{{\"op\":\"wifi_trial\",\"networks\":[],\"revert_after_s\":\"{SECRET}\"}}");
        let error = Request::parse(&line).unwrap_err();
        assert!(!error.contains(SECRET), "{error}");
        assert!(error.contains("\"op\":\"commit\""), "{error}");
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::ok().to_line(), "{\"ok\":true}\n");
        let refused = Reply::error("no trial is pending");
        assert_eq!(
            refused.to_line(),
            "{\"ok\":false,\"error\":\"no trial is pending\"}\n"
        );
        let read: Reply = serde_json::from_str(refused.to_line().trim_end()).unwrap();
        assert_eq!(read.into_result(), Err("no trial is pending".into()));
        assert_eq!(Reply::ok().into_result(), Ok(()));
    }
}
