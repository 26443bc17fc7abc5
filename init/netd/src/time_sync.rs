//! SNTP against the lease's and the configured time servers (rsntp): the first good answer
//! of a boot steps the clock, later ones slew it (clock.rs decides), and every good answer
//! refreshes the last known time on /data.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rsntp::{AsyncSntpClient, Config};
use tokio::sync::watch;

use crate::clock::{self, Correction, unix_secs};
use crate::firewall::NTP_PORT;
use crate::state::Shared;

const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Between good answers; a clock that slews drifts little in this time.
const SYNC_INTERVAL: Duration = Duration::from_secs(1024);
/// After no server answered.
const RETRY_INTERVAL: Duration = Duration::from_secs(30);

pub struct TimeSync {
    pub servers: watch::Receiver<Vec<IpAddr>>,
    pub floor: SystemTime,
    pub state_dir: PathBuf,
    pub shared: Shared,
}

impl TimeSync {
    pub async fn run(mut self) {
        let mut stepped = false;
        loop {
            let servers = self.servers.borrow_and_update().clone();
            let wait = if servers.is_empty() {
                None
            } else if self.sync_once(&servers, &mut stepped).await {
                Some(SYNC_INTERVAL)
            } else {
                Some(RETRY_INTERVAL)
            };
            // A new server list (a lease arrived) is tried at once.
            match wait {
                None => {
                    if self.servers.changed().await.is_err() {
                        return;
                    }
                }
                Some(wait) => {
                    let _ = tokio::time::timeout(wait, self.servers.changed()).await;
                }
            }
        }
    }

    /// Asks the servers in order until one answers; `true` when one did.
    async fn sync_once(&mut self, servers: &[IpAddr], stepped: &mut bool) -> bool {
        for &server in servers {
            let bind: SocketAddr = match server {
                IpAddr::V4(_) => "0.0.0.0:0",
                IpAddr::V6(_) => "[::]:0",
            }
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let client = AsyncSntpClient::with_config(
                Config::default().bind_address(bind).timeout(QUERY_TIMEOUT),
            );
            let offset = match client.synchronize(SocketAddr::new(server, NTP_PORT)).await {
                Ok(result) => result.clock_offset().as_secs_f64(),
                Err(err) => {
                    let error = format!("{server}: {err}");
                    eprintln!("time: {error}");
                    self.shared.lock().time.last_error = Some(error);
                    continue;
                }
            };
            self.correct(server, offset, stepped);
            return true;
        }
        false
    }

    fn correct(&mut self, server: IpAddr, offset: f64, stepped: &mut bool) {
        let now = SystemTime::now();
        let outcome = match clock::correction(now, offset, self.floor, *stepped) {
            Correction::Refuse { server_time } => Err(format!(
                "{server} says {} s since 1970, before the last known time {}; ignored",
                unix_secs(server_time),
                unix_secs(self.floor)
            )),
            Correction::Step(to) => clock::set(to)
                .map(|()| {
                    *stepped = true;
                    format!("clock stepped {offset:+.3} s from {server}")
                })
                .map_err(|e| e.to_string()),
            Correction::Slew(secs) => crate::slew::slew(secs)
                .map(|()| {
                    *stepped = true;
                    format!("clock slewing {secs:+.3} s from {server}")
                })
                .map_err(|e| e.to_string()),
        };
        let mut state = self.shared.lock();
        match outcome {
            Ok(line) => {
                eprintln!("time: {line}");
                state.time.synced = true;
                state.time.server = Some(server.to_string());
                state.time.last_offset_secs = Some(offset);
                state.time.last_sync_unix = Some(unix_secs(SystemTime::now()));
                state.time.last_error = None;
                drop(state);
                self.floor = self.floor.max(SystemTime::now());
                if let Err(err) = clock::save(&self.state_dir) {
                    eprintln!("time: {err}");
                }
            }
            Err(error) => {
                eprintln!("time: {error}");
                state.time.last_error = Some(error);
            }
        }
    }
}
