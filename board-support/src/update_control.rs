//! The update service's control protocol, one definition for updated (the server) and agentd
//! (the client). updated writes slots and boot entries as a uid of its own; agentd, which
//! talks to the owner and runs model-chosen tools, cannot, and asks here instead. updated
//! answers only the uids given with `--controller <uid>` and closes on everyone else.
//!
//! One JSON request line, one JSON reply line, then updated closes:
//!
//! ```text
//! {"op":"health","self_test":"passed","im_connected":true,"uptime_s":42}   agentd's report, every few seconds
//! {"op":"status"}
//! {"op":"check","force":false}      look now; the reply comes once the check is done
//! {"op":"install","force":false}    look, download and write the other slot, in the background
//! {"op":"reboot"}                   restart into the slot written and armed for a trial
//!
//! {"ok":true,"status":{…}}
//! {"ok":false,"error":"what is wrong and what to do","status":{…}}
//! ```
//!
//! Every reply carries the status, and the status carries the last events (progress and
//! results, each with a sequence number): agentd tells the owner the ones it has not told yet.
//! The health report is also how a trial boot learns whether agentd is well: a new slot is
//! committed only after agentd reported its self-test passed (and its IM link connected, if it
//! was connected before the update).

use serde::{Deserialize, Serialize};

use crate::slot::Slot;

/// Where updated listens (its runtime directory is /run/updated).
pub const SOCKET_PATH: &str = "/run/updated/control.sock";
pub const SOCKET_NAME: &str = "control.sock";
/// Requests are a few words; anything longer is a confused or hostile client.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Events a status carries: enough for everything one update says, from check to commit.
pub const MAX_EVENTS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Health {
        /// "passed", or what failed.
        self_test: String,
        im_connected: bool,
        /// Seconds since this agentd started: a restart (a crash) starts the count again.
        uptime_s: u64,
    },
    // Empty braces, not unit variants: serde then refuses unknown fields here too.
    Status {},
    Check {
        #[serde(default)]
        force: bool,
    },
    Install {
        #[serde(default)]
        force: bool,
    },
    Reboot {},
}

/// What agentd's self-test says when nothing failed.
pub const SELF_TEST_PASSED: &str = "passed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub status: Status,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// The version this boot runs.
    pub version: String,
    pub slot: Option<Slot>,
    /// This boot is a trial that has not been committed yet.
    pub on_trial: bool,
    /// One line for the owner: idle, checking, downloading (with bytes), written and waiting
    /// for the reboot, on trial.
    pub activity: String,
    /// A newer version the repository offers this box, when the last check found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// The newest events, oldest first.
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: u64,
    pub text: String,
}

impl Request {
    /// The line agentd writes, newline included.
    pub fn to_line(&self) -> String {
        // Strings and booleans: encoding cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads a request line as updated does before acting on it; the error says what to send.
    pub fn parse(line: &str) -> Result<Request, String> {
        serde_json::from_str(line.trim_end()).map_err(|error| {
            format!(
                "not a request of updated's control protocol ({error}); send one JSON line: \
                 {{\"op\":\"status\"}}, {{\"op\":\"check\"}}, {{\"op\":\"install\"}}, \
                 {{\"op\":\"reboot\"}} or {{\"op\":\"health\",\"self_test\":…,\"im_connected\":…,\"uptime_s\":…}}"
            )
        })
    }
}

impl Reply {
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    pub fn parse(line: &str) -> Result<Reply, String> {
        serde_json::from_str(line.trim_end())
            .map_err(|error| format!("updated's reply is not one this agentd understands: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_the_documented_shape() {
        let health = Request::Health {
            self_test: SELF_TEST_PASSED.into(),
            im_connected: true,
            uptime_s: 42,
        };
        assert_eq!(
            health.to_line(),
            "{\"op\":\"health\",\"self_test\":\"passed\",\"im_connected\":true,\"uptime_s\":42}\n"
        );
        assert_eq!(Request::parse(&health.to_line()).unwrap(), health);
        assert_eq!(
            Request::parse("{\"op\":\"install\"}").unwrap(),
            Request::Install { force: false }
        );
        assert_eq!(
            Request::parse("{\"op\":\"check\",\"force\":true}").unwrap(),
            Request::Check { force: true }
        );
        assert_eq!(Request::Reboot {}.to_line(), "{\"op\":\"reboot\"}\n");
    }

    #[test]
    fn bad_requests_say_what_to_send() {
        for (line, wanted) in [
            ("", "send one JSON line"),
            ("{\"op\":\"format\"}", "unknown variant `format`"),
            ("{\"op\":\"reboot\",\"now\":true}", "unknown field `now`"),
        ] {
            let error = Request::parse(line).unwrap_err();
            assert!(error.contains(wanted), "{line}: {error}");
        }
    }

    #[test]
    fn replies_round_trip() {
        let reply = Reply {
            ok: false,
            error: Some("no update is written yet; send /update install first".into()),
            status: Status {
                version: "0.1.0".into(),
                slot: Some(Slot::A),
                on_trial: false,
                activity: "idle".into(),
                available: Some("0.1.1".into()),
                events: vec![Event {
                    seq: 3,
                    text: "0.1.1 is available".into(),
                }],
            },
        };
        assert_eq!(Reply::parse(&reply.to_line()).unwrap(), reply);
    }
}
