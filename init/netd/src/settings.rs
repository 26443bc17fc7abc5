//! netd's configuration: the image's defaults (/etc/carapace/netd.toml, written by the
//! builder from the recipe) merged with the owner's file on /data. An owner file that does
//! not parse or validate is not applied: netd keeps the last configuration that did (saved
//! beside it, atomically, each time a new one is applied) and says why, in the log and on
//! the status socket. While a Wi-Fi trial is pending (trial.rs) the owner's file is not yet
//! known to be good, so it becomes the last good one only when the trial is committed.

use std::path::{Path, PathBuf};

use carapace_netpolicy::NetdConfig;

pub struct Paths {
    pub image: PathBuf,
    pub owner: PathBuf,
    pub last_good: PathBuf,
    /// The owner's file as it was before a pending Wi-Fi trial: the trial's revert point.
    pub before_trial: PathBuf,
}

impl Paths {
    /// The owner's file and the last good copy live in netd's state directory.
    pub fn new(state_dir: &Path) -> Paths {
        Paths {
            image: PathBuf::from(carapace_netpolicy::config::IMAGE_CONFIG_PATH),
            owner: state_dir.join("config.toml"),
            last_good: state_dir.join("config.last-good.toml"),
            before_trial: state_dir.join(BEFORE_TRIAL_FILE),
        }
    }
}

pub const BEFORE_TRIAL_FILE: &str = "config.before-trial.toml";

pub struct Loaded {
    pub config: NetdConfig,
    /// Why the owner's file is not in force, when it is not.
    pub problem: Option<String>,
}

pub fn load(paths: &Paths) -> Loaded {
    let (image, image_problem) = match read(&paths.image) {
        Ok(Some(config)) => (config, None),
        Ok(None) => (NetdConfig::default(), None),
        // The image's own file is checked at build time; if it is broken anyway, the box
        // still runs with no allowlist rather than not at all.
        Err(problem) => (NetdConfig::default(), Some(problem)),
    };
    let owner = match read(&paths.owner) {
        Ok(None) => {
            return Loaded {
                config: image,
                problem: image_problem,
            };
        }
        Ok(Some(owner)) => owner,
        Err(problem) => {
            let fallback = match read(&paths.last_good) {
                Ok(Some(last_good)) => (
                    NetdConfig::merged(&image, &last_good),
                    "the last good configuration",
                ),
                _ => (image, "the image's defaults"),
            };
            return Loaded {
                config: fallback.0,
                problem: Some(format!("{problem}; keeping {}", fallback.1)),
            };
        }
    };
    let config = NetdConfig::merged(&image, &owner);
    if !paths.before_trial.exists()
        && let Err(err) = save_last_good(paths, &owner)
    {
        eprintln!("config: {err}");
    }
    Loaded {
        config,
        problem: image_problem,
    }
}

/// Makes the owner's file the last good one (a Wi-Fi trial was committed).
pub fn save_owner_as_last_good(paths: &Paths) -> Result<(), String> {
    match read(&paths.owner)? {
        Some(owner) => save_last_good(paths, &owner),
        None => Ok(()),
    }
}

pub(crate) fn read(path: &Path) -> Result<Option<NetdConfig>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("read {}: {err}", path.display())),
    };
    NetdConfig::parse(&text)
        .map(Some)
        .map_err(|err| format!("{}: {err}", path.display()))
}

fn save_last_good(paths: &Paths, owner: &NetdConfig) -> Result<(), String> {
    let text = owner.to_toml().map_err(|e| e.to_string())?;
    if std::fs::read_to_string(&paths.last_good).is_ok_and(|old| old == text) {
        return Ok(());
    }
    board_support::atomic_file::write(&paths.last_good, text.as_bytes(), 0o600)
        .map_err(|err| format!("save {}: {err}", paths.last_good.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            image: dir.join("image.toml"),
            owner: dir.join("config.toml"),
            last_good: dir.join("config.last-good.toml"),
            before_trial: dir.join(BEFORE_TRIAL_FILE),
        }
    }

    const IMAGE: &str = "[[allow]]\nname = \"api.telegram.org\"\n";

    #[test]
    fn a_good_owner_file_is_merged_and_kept_as_last_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        std::fs::write(&paths.image, IMAGE).expect("write");
        std::fs::write(&paths.owner, "[[allow]]\nname = \"example.org\"\n").expect("write");
        let loaded = load(&paths);
        assert_eq!(loaded.problem, None);
        let names: Vec<String> = loaded
            .config
            .allow
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        assert_eq!(names, ["api.telegram.org", "example.org"]);
        assert!(
            std::fs::read_to_string(&paths.last_good)
                .expect("last good")
                .contains("example.org")
        );
    }

    #[test]
    fn a_bad_owner_file_keeps_the_last_good_one_and_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        std::fs::write(&paths.image, IMAGE).expect("write");
        std::fs::write(&paths.owner, "[[allow]]\nname = \"example.org\"\n").expect("write");
        load(&paths);
        std::fs::write(&paths.owner, "[[allow]]\nname = \"bad name!\"\n").expect("write");
        let loaded = load(&paths);
        let problem = loaded.problem.expect("a problem");
        assert!(
            problem.contains("config.toml") && problem.contains("keeping the last good"),
            "{problem}"
        );
        assert!(
            loaded
                .config
                .allow
                .iter()
                .any(|e| e.name.to_string() == "example.org")
        );
        // The bad file is left for the owner to fix, not overwritten.
        assert!(
            std::fs::read_to_string(&paths.owner)
                .expect("owner")
                .contains("bad name!")
        );
    }

    #[test]
    fn a_file_on_trial_is_applied_but_not_yet_the_last_good_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        std::fs::write(&paths.owner, "[[allow]]\nname = \"example.org\"\n").expect("write");
        load(&paths);
        std::fs::write(&paths.before_trial, "").expect("write");
        std::fs::write(&paths.owner, "[[allow]]\nname = \"trial.org\"\n").expect("write");
        let loaded = load(&paths);
        assert!(
            loaded
                .config
                .allow
                .iter()
                .any(|e| e.name.to_string() == "trial.org")
        );
        let last_good = std::fs::read_to_string(&paths.last_good).expect("last good");
        assert!(last_good.contains("example.org"), "{last_good}");
        save_owner_as_last_good(&paths).expect("save");
        let last_good = std::fs::read_to_string(&paths.last_good).expect("last good");
        assert!(last_good.contains("trial.org"), "{last_good}");
    }

    #[test]
    fn without_an_owner_file_the_image_defaults_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        std::fs::write(&paths.image, IMAGE).expect("write");
        let loaded = load(&paths);
        assert_eq!(loaded.problem, None);
        assert_eq!(loaded.config.allow.len(), 1);
        assert!(!paths.last_good.exists());
    }
}
