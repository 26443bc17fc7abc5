//! Where downloaded model wheels and their unpacked files live. The same rule on the box and on
//! a build machine: CARAPACE_CACHE, else $XDG_CACHE_HOME/carapace, else ~/.cache/carapace; the
//! models are in its `models/` folder.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The models folder of the cache this process's environment names.
pub fn models_dir() -> Result<PathBuf> {
    models_dir_from(|name| std::env::var_os(name).map(PathBuf::from))
}

/// The models folder for an environment read through `var` (empty values count as unset, as
/// the XDG base directory rules say).
pub fn models_dir_from(var: impl Fn(&str) -> Option<PathBuf>) -> Result<PathBuf> {
    let set = |name: &str| var(name).filter(|value| !value.as_os_str().is_empty());
    let cache = if let Some(dir) = set("CARAPACE_CACHE") {
        dir
    } else if let Some(xdg) = set("XDG_CACHE_HOME") {
        xdg.join("carapace")
    } else if let Some(home) = set("HOME") {
        home.join(".cache").join("carapace")
    } else {
        return Err(Error::NoCacheDirectory);
    };
    Ok(cache.join("models"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| PathBuf::from(v))
        }
    }

    #[test]
    fn carapace_cache_wins_over_xdg_and_home() {
        let dir = models_dir_from(env(&[
            ("CARAPACE_CACHE", "/var/cache/carapace"),
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dir.unwrap(), PathBuf::from("/var/cache/carapace/models"));
    }

    #[test]
    fn xdg_cache_home_gets_a_carapace_folder() {
        let dir = models_dir_from(env(&[
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dir.unwrap(), PathBuf::from("/home/u/.xdg/carapace/models"));
    }

    #[test]
    fn home_is_the_last_resort_and_empty_values_are_unset() {
        let dir = models_dir_from(env(&[
            ("CARAPACE_CACHE", ""),
            ("XDG_CACHE_HOME", ""),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(
            dir.unwrap(),
            PathBuf::from("/home/u/.cache/carapace/models")
        );
    }

    #[test]
    fn no_variable_at_all_is_an_error() {
        assert!(matches!(
            models_dir_from(env(&[])),
            Err(Error::NoCacheDirectory)
        ));
    }
}
