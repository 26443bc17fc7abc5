//! What can be wrong with a skill, each naming the skill or file and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    SkillMd { path: PathBuf, problem: String },
    #[error("skill {skill}: {problem}")]
    Folder { skill: String, problem: String },
    /// A skill's zip that cannot be unpacked as one (archive.rs).
    #[error("the zip cannot be a skill: {0}")]
    Archive(String),
    /// A signed skill pack that does not check out, or cannot be made (pack.rs).
    #[error("skill pack {dir}: {problem}")]
    Pack { dir: PathBuf, problem: String },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request the model made that cannot be answered: an unknown skill, a file outside the
    /// skill's folder, a file that is not text.
    #[error("{0}")]
    Request(String),
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
