//! The one error type of PID 1. Every variant says what was being done, because the only
//! place an error ends up is a single console line before the box reboots.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("kernel command line: {0}")]
    BootParams(#[from] board_support::Error),

    #[error("{0}")]
    Partition(board_support::Error),

    #[error("{path}: {message}")]
    Config { path: String, message: String },

    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attaches what was being done to a system call's error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::Io {
            what: what(),
            source: err.into(),
        })
    }
}
