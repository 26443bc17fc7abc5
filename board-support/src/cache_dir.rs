//! The Carapace cache folder, one rule for the image builder (packages, images) and the
//! inference engine (model wheels): CARAPACE_CACHE, else $XDG_CACHE_HOME/carapace, else
//! ~/.cache/carapace. Empty values count as unset, as the XDG base directory rules say.

use std::path::PathBuf;

/// The cache folder of this process's environment; `None` without CARAPACE_CACHE,
/// XDG_CACHE_HOME or HOME.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name).map(PathBuf::from))
}

/// The cache folder for an environment read through `var`.
pub fn cache_dir_from(var: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|value| !value.as_os_str().is_empty());
    set("CARAPACE_CACHE")
        .or_else(|| set("XDG_CACHE_HOME").map(|xdg| xdg.join("carapace")))
        .or_else(|| set("HOME").map(|home| home.join(".cache").join("carapace")))
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
        let dir = cache_dir_from(env(&[
            ("CARAPACE_CACHE", "/var/cache/carapace"),
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dir.unwrap(), PathBuf::from("/var/cache/carapace"));
    }

    #[test]
    fn xdg_cache_home_gets_a_carapace_folder() {
        let dir = cache_dir_from(env(&[
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dir.unwrap(), PathBuf::from("/home/u/.xdg/carapace"));
    }

    #[test]
    fn home_is_the_last_resort_and_empty_values_are_unset() {
        let dir = cache_dir_from(env(&[
            ("CARAPACE_CACHE", ""),
            ("XDG_CACHE_HOME", ""),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(dir.unwrap(), PathBuf::from("/home/u/.cache/carapace"));
    }

    #[test]
    fn no_variable_at_all_is_no_folder() {
        assert_eq!(cache_dir_from(env(&[])), None);
    }
}
