//! What can go wrong in the skill host before or around a skill's own code. How the skill's
//! code itself ended (deadline, memory, crash) is not an error here but an Outcome for agentd.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request on stdin is not a skill call: {0}")]
    Request(String),
    #[error("could not talk to agentd over stdin/stdout: {0}")]
    Channel(std::io::Error),
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel refused the sandbox ({what}): {detail}")]
    Sandbox { what: &'static str, detail: String },
    #[error("{0}")]
    Wasm(String),
    /// How it was started is wrong (an argument, the environment).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn io(
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
