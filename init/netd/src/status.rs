//! The status socket ($RUNTIME_DIRECTORY/status.sock): a client connects and reads one JSON
//! document, then end of file. Links, addresses, leases, time, the allowlist, the resolvers,
//! the DNS stub's counters and the firewall's set sizes and drop counters. Nothing on it is
//! secret (no Wi-Fi passphrases), so any local service may read it; agentd shows it to the
//! owner.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

use crate::error::{Error, Result};

pub const SOCKET_NAME: &str = "status.sock";

pub struct StatusServer {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusServer {
    pub fn bind(path: &Path) -> Result<StatusServer> {
        let bind_error = |source| Error::Bind {
            what: path.display().to_string(),
            source,
        };
        // A socket left by the netd that ran before a crash.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(bind_error)?;
        Ok(StatusServer {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers each client with what `collect` returns at that moment.
    pub async fn serve<S, F, Fut>(&self, collect: F) -> std::convert::Infallible
    where
        S: Serialize,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = S>,
    {
        loop {
            let Ok((mut stream, _)) = self.listener.accept().await else {
                continue;
            };
            let status = collect().await;
            let mut text = serde_json::to_vec_pretty(&status).unwrap_or_default();
            text.push(b'\n');
            // A client that does not read is its own problem: bounded by the write timeout.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                let _ = stream.write_all(&text).await;
                let _ = stream.shutdown().await;
            })
            .await;
        }
    }
}

/// One status document.
#[derive(Serialize)]
pub struct Status<D: Serialize> {
    #[serde(flatten)]
    pub state: crate::state::State,
    pub dns: D,
    pub firewall: Result<carapace_netpolicy::FirewallStatus, String>,
}

/// The shared state with each link's addresses as the kernel has them now, the stub's
/// counters, and the firewall's counters and set sizes as nft lists them now.
pub async fn collect<D: Serialize>(
    shared: &crate::state::Shared,
    firewall: &crate::firewall::Firewall,
    handle: &rtnetlink::Handle,
    dns: D,
) -> Status<D> {
    let mut state = shared.lock().clone();
    for link in &mut state.links {
        link.addresses = match crate::links::addresses(handle, link.index).await {
            Ok(found) => found.iter().map(|(a, p)| format!("{a}/{p}")).collect(),
            Err(err) => vec![err.to_string()],
        };
    }
    Status {
        state,
        dns,
        firewall: firewall.list().await.map_err(|e| e.to_string()),
    }
}
