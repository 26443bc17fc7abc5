//! The one error type of the image builder. Every message says what was wrong and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read recipe {path}: {source}")]
    RecipeRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("recipe {path} is not valid: {message}")]
    RecipeInvalid { path: PathBuf, message: String },

    #[error("unknown board '{board}'; known boards: {known}")]
    UnknownBoard { board: String, known: String },

    #[error("the partitions do not fit: {0}")]
    DoesNotFit(String),

    #[error(
        "host tool '{tool}' not found; install the Debian package '{package}' (or run `make deps`)"
    )]
    MissingTool { tool: String, package: String },

    #[error("`{command}` failed: {detail}")]
    CommandFailed { command: String, detail: String },

    #[error("Debian package {0}")]
    Package(String),

    #[error("lock file {path}: {message}")]
    Lock { path: PathBuf, message: String },

    #[error(
        "{package} {version}, pinned in {lock} for '{requested}', is served by no source (the \
         download cache, the mirror, the Debian snapshot archive) and --locked forbids moving \
         it; either build without --locked, which moves it to the archive's current version, \
         or run `carapace lock --recipe {recipe} --update {requested}`",
        lock = lock.display(),
        recipe = lock.with_extension("toml").display()
    )]
    PinUnavailable {
        package: String,
        version: String,
        lock: PathBuf,
        requested: String,
    },

    /// The vendor's board support package ([bsp]): what is wrong and what to do.
    #[error("the BSP: {0}")]
    Bsp(String),

    /// Raspberry Pi's kernel packages ([pi_kernel]): what is wrong and what to do.
    #[error("Raspberry Pi's kernel: {0}")]
    PiKernel(String),

    /// The Hailo driver, firmware and runtime ([hailo]): what is wrong and what to do.
    #[error("Hailo: {0}")]
    Hailo(String),

    #[error("kernel module {0}")]
    Module(String),

    #[error("making the skill pack: {0}")]
    SkillPack(#[source] carapace_skills::Error),

    #[error("making the model pack: {0}")]
    ModelsAdd(#[source] carapace_models::Error),

    #[error("model {name} of the recipe's [[model]]: {source}")]
    Model {
        name: String,
        #[source]
        source: carapace_models::Error,
    },

    #[error("{0}")]
    Image(String),

    /// `carapace flash` will not write to the target; the reason says what to do instead.
    #[error("will not flash {target}: {reason}")]
    FlashRefused { target: PathBuf, reason: String },

    #[error("flashing {target}: {message}")]
    Flash { target: PathBuf, message: String },

    #[error("QEMU: {0}")]
    Qemu(String),

    /// Keys, key lists, bundles and repositories (carapace-update says what and what to do).
    #[error("{0}")]
    Update(#[from] carapace_update::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn image(message: impl Into<String>) -> Self {
        Error::Image(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a human context to an I/O error; a full disk reads as "No space left on device" with
/// the path that was being written.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
