//! What can go wrong in the update service, each naming what failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal of the update formats: a bad signature, a revoked key, the wrong board, a
    /// downgrade, a tampered chunk (carapace-update says which and what to do).
    #[error(transparent)]
    Update(#[from] carapace_update::Error),
    #[error("boot control: {0}")]
    Boot(#[from] board_support::Error),
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the update configuration: {0}")]
    Config(String),
    #[error("the state file {path} is unreadable ({reason}); it is kept as {path}.bad")]
    State { path: PathBuf, reason: String },
    /// A request that cannot be done now, and what to do instead.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
