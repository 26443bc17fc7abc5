//! The bench's one error type: a sentence that says what failed and, where we know, what to do.

use std::fmt;

pub struct BenchError(pub String);

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// `main` prints errors with Display; Debug says the same so that nothing prints a struct dump.
impl fmt::Debug for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn fail(message: impl Into<String>) -> BenchError {
    BenchError(message.into())
}

/// Puts what we were doing in front of an error: "install ZeroClaw: <cause>".
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| BenchError(format!("{}: {e}", what())))
    }
}
