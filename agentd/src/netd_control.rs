//! agentd's side of netd's control socket (board_support::netd_control has the protocol).
//! agentd owns the settings transactions but cannot write netd's files or signal netd (they
//! run as different uids), so a Wi-Fi change is asked for here: a trial that netd reverts by
//! itself unless agentd commits it, which agentd does only once the new networks proved they
//! reach the LLM and the owner's chat (runtime.rs). The first-boot file's networks are handed
//! over the same way, committed at once: at first boot there is nothing better to go back to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use board_support::netd_control::{Reply, Request};
use board_support::wifi::WifiNetwork;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::Error;
use crate::store::Store;

/// Set (to the environment's value) only by tests, which run a fake netd; read once at start.
pub const SOCKET_ENV: &str = "NETD_CONTROL_SOCKET";
/// The store's settings row that says the first-boot networks still have to reach netd.
pub const FIRST_BOOT_PENDING: &str = "wifi_to_netd";
/// One exchange: netd answers a trial once its Wi-Fi loop acted on it (a few seconds).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// The first-boot networks: how long netd is waited for, and the waits between tries.
const FIRST_BOOT_TRIES_FOR: Duration = Duration::from_secs(10 * 60);
const FIRST_BOOT_WAIT_FIRST: Duration = Duration::from_secs(1);
const FIRST_BOOT_WAIT_MAX: Duration = Duration::from_secs(30);
/// A first-boot trial is committed right after it starts; this only covers a crash between.
const FIRST_BOOT_REVERT_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct NetdControl {
    path: PathBuf,
}

impl NetdControl {
    pub fn new(path: PathBuf) -> NetdControl {
        NetdControl { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts `networks` in force until a commit, or for `revert_after` at most.
    pub async fn wifi_trial(
        &self,
        networks: &[WifiNetwork],
        revert_after: Duration,
    ) -> Result<(), Error> {
        self.ask(&Request::WifiTrial {
            networks: networks.to_vec(),
            revert_after_s: revert_after.as_secs(),
        })
        .await
    }

    pub async fn commit(&self) -> Result<(), Error> {
        self.ask(&Request::Commit {}).await
    }

    pub async fn revert(&self) -> Result<(), Error> {
        self.ask(&Request::Revert {}).await
    }

    /// Lets agentd reach `name` at `port` from now on (a server the owner added).
    pub async fn allow(&self, name: &str, port: u16) -> Result<(), Error> {
        self.ask(&Request::Allow {
            name: name.to_string(),
            port,
        })
        .await
    }

    /// Takes `name` at `port` back out of the owner's part of the allowlist (nothing on the
    /// box needs it any more); netd closes what it opened for it at once.
    pub async fn disallow(&self, name: &str, port: u16) -> Result<(), Error> {
        self.ask(&Request::Disallow {
            name: name.to_string(),
            port,
        })
        .await
    }

    async fn ask(&self, request: &Request) -> Result<(), Error> {
        let unreachable = |reason: String| Error::NetdUnreachable {
            path: self.path.clone(),
            reason,
        };
        let exchange = async {
            let mut stream = UnixStream::connect(&self.path)
                .await
                .map_err(|error| unreachable(error.to_string()))?;
            stream
                .write_all(request.to_line().as_bytes())
                .await
                .map_err(|error| unreachable(format!("sending the request: {error}")))?;
            let mut line = String::new();
            BufReader::new(stream)
                .read_line(&mut line)
                .await
                .map_err(|error| unreachable(format!("reading the reply: {error}")))?;
            if line.is_empty() {
                return Err(unreachable(
                    "closed without a reply (is agentd's uid one of netd's --controller?)".into(),
                ));
            }
            let reply: Reply = serde_json::from_str(line.trim_end())
                .map_err(|error| unreachable(format!("the reply is not netd's JSON: {error}")))?;
            reply.into_result().map_err(Error::NetdRefused)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(unreachable(format!(
                    "no reply within {} s",
                    EXCHANGE_TIMEOUT.as_secs()
                )))
            })
    }
}

/// Hands the first-boot file's networks to netd: a trial committed at once. netd may not
/// listen yet (or restart in between): tried again, with growing waits, for
/// [`FIRST_BOOT_TRIES_FOR`]. The store's [`FIRST_BOOT_PENDING`] row is cleared only once netd
/// has them, so a restart of agentd tries again.
pub async fn hand_over_first_boot(
    netd: NetdControl,
    networks: Vec<WifiNetwork>,
    store: Arc<Store>,
) {
    let ssids: Vec<&str> = networks.iter().map(|n| n.ssid.as_str()).collect();
    let ssids = ssids.join(",");
    let started = Instant::now();
    let mut wait = FIRST_BOOT_WAIT_FIRST;
    loop {
        let retry = match netd.wifi_trial(&networks, FIRST_BOOT_REVERT_AFTER).await {
            // The networks themselves were refused: trying again changes nothing.
            Err(Error::NetdRefused(reason)) => {
                eprintln!(
                    "wifi: netd refused the first-boot networks ({ssids}): {reason}; set them \
                     again from the owner's chat (/settings set wifi.add ...)"
                );
                clear_pending(&store);
                return;
            }
            Err(error) => error,
            // A refused commit means netd went back by itself (it restarted): again.
            Ok(()) => match netd.commit().await {
                Ok(()) => {
                    // Cleared before it is said, so whoever reads the line may rely on it.
                    clear_pending(&store);
                    println!("wifi: netd has the first-boot networks ({ssids})");
                    return;
                }
                Err(error) => error,
            },
        };
        if started.elapsed() >= FIRST_BOOT_TRIES_FOR {
            eprintln!(
                "wifi: gave up handing the first-boot networks ({ssids}) to netd after {} min: \
                 {retry}; agentd tries again at its next start",
                FIRST_BOOT_TRIES_FOR.as_secs() / 60
            );
            return;
        }
        eprintln!(
            "wifi: the first-boot networks ({ssids}) are not with netd yet: {retry}; trying \
             again in {} s",
            wait.as_secs()
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(FIRST_BOOT_WAIT_MAX);
    }
}

fn clear_pending(store: &Store) {
    if let Err(error) = store.put_setting(FIRST_BOOT_PENDING, None) {
        eprintln!("wifi: {error}");
    }
}
