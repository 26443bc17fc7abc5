//! The long connection's bootstrap: `POST {domain}/callback/ws/endpoint` with the app id and
//! secret gives a one-time `wss://` URL (its query names the connection's `service_id`, which
//! every ping carries) and the server's settings for the client (`ClientConfig`; intervals in
//! seconds). The URL carries an access key and a ticket, so it is never put into a message.
//!
//! Codes (larksuite/oapi-sdk-go `ws/const.go`): 0 ok, 1 busy, 1000040343 internal error (both
//! worth retrying), 1000040350 too many connections (another client holds this app's), and
//! anything else (403 forbidden, 514 auth failed, …) the credentials' fault.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::call::{failure_error, read_reply, retry_after};
use super::{CALL_TIMEOUT, CHANNEL, Feishu};
use crate::Error;

const BUSY: i64 = 1;
const INTERNAL_ERROR: i64 = 1_000_040_343;
pub(super) const TOO_MANY_CONNECTIONS: i64 = 1_000_040_350;
/// The SDK's ping interval until the server says otherwise.
pub(super) const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);

/// Where to connect, and how.
pub(super) struct Endpoint {
    pub url: Url,
    pub service_id: i32,
    pub ping_interval: Duration,
}

/// The server's settings for the client, in the bootstrap answer and in every pong. Only the
/// ping interval is used: ReconnectCount, ReconnectInterval and ReconnectNonce are left
/// unread, because the receiver's backoff (with its own jitter) paces reconnects.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(super) struct ClientConfig {
    /// Seconds.
    #[serde(rename = "PingInterval")]
    pub ping_interval: Option<i64>,
}

impl ClientConfig {
    /// The ping interval it sets, if it sets a usable one.
    pub fn ping(&self) -> Option<Duration> {
        let seconds = u64::try_from(self.ping_interval?).ok()?;
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }
}

#[derive(Deserialize)]
struct EndpointData {
    #[serde(rename = "URL")]
    url: String,
    #[serde(rename = "ClientConfig")]
    client_config: Option<ClientConfig>,
}

impl Feishu {
    pub(super) async fn endpoint(&self) -> Result<Endpoint, Error> {
        const WHAT: &str = "the long connection's endpoint";
        let url = format!("{}/callback/ws/endpoint", self.base);
        let body = json!({"AppID": self.app_id, "AppSecret": self.app_secret});
        let response = self
            .http
            .post(url)
            .header("locale", "zh")
            .json(&body)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.transport(WHAT, error))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport(WHAT, error))?;
        let reply = match read_reply(status, wait, &body) {
            Ok(Ok(reply)) => reply,
            Ok(Err(failure)) => {
                let detail = format!("{WHAT}: {}", failure.describe());
                return Err(match failure.code {
                    _ if failure.rate_limited() => failure_error(WHAT, failure),
                    None | Some(BUSY) | Some(INTERNAL_ERROR) => Error::Unreachable {
                        channel: CHANNEL,
                        detail,
                    },
                    Some(TOO_MANY_CONNECTIONS) => too_many_connections(&detail),
                    Some(_) => Error::Unauthorized {
                        channel: CHANNEL,
                        detail,
                    },
                });
            }
            Err(detail) => return Err(protocol(&detail)),
        };
        let data: EndpointData = serde_json::from_value(reply["data"].clone())
            .map_err(|error| protocol(&format!("no URL in the answer ({error})")))?;
        let url = checked_ws_url(&data.url)?;
        let service_id = url
            .query_pairs()
            .find(|(name, _)| name == "service_id")
            .and_then(|(_, value)| value.parse::<i32>().ok())
            .ok_or_else(|| protocol("the URL names no service_id"))?;
        let ping_interval = data
            .client_config
            .and_then(|config| config.ping())
            .unwrap_or(DEFAULT_PING_INTERVAL);
        Ok(Endpoint {
            url,
            service_id,
            ping_interval,
        })
    }
}

/// The connection URL, if it is one the box may use: `wss://`, or `ws://` to loopback (tests).
fn checked_ws_url(text: &str) -> Result<Url, Error> {
    let url = Url::parse(text).map_err(|error| protocol(&format!("a bad URL ({error})")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => return Err(protocol("the URL names no host")),
    };
    match (url.scheme(), loopback) {
        ("wss", _) | ("ws", true) => Ok(url),
        (scheme, _) => Err(protocol(&format!(
            "the URL's scheme {scheme}: is not wss: (plain ws: is for loopback only)"
        ))),
    }
}

pub(super) fn too_many_connections(detail: &str) -> Error {
    Error::Rejected {
        channel: CHANNEL,
        detail: format!(
            "{detail}: too many connections; is another box or program using this app's long connection?"
        ),
    }
}

fn protocol(detail: &str) -> Error {
    Error::Protocol {
        channel: CHANNEL,
        detail: format!("the long connection's endpoint: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wss_or_loopback_ws_is_used() {
        assert!(checked_ws_url("wss://msg-frontier.feishu.cn/ws/v2?service_id=1").is_ok());
        assert!(checked_ws_url("ws://127.0.0.1:8080/ws/v2?service_id=1").is_ok());
        let error = checked_ws_url("ws://msg-frontier.feishu.cn/ws/v2").unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(checked_ws_url("https://msg-frontier.feishu.cn/ws/v2").is_err());
        assert!(checked_ws_url("not a url").is_err());
    }

    #[test]
    fn the_client_config_sets_the_ping_interval_in_seconds() {
        let config: ClientConfig = serde_json::from_str(
            r#"{"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30,"PingInterval":90}"#,
        )
        .unwrap();
        assert_eq!(config.ping(), Some(Duration::from_secs(90)));
        let config: ClientConfig = serde_json::from_str(r#"{"PingInterval":0}"#).unwrap();
        assert_eq!(config.ping(), None);
        let config: ClientConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.ping(), None);
    }
}
