//! Where downloaded model wheels and their unpacked files live: the `models/` folder of the
//! Carapace cache (board_support::cache_dir, the image builder's rule too).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The models folder of the cache this process's environment names.
pub fn models_dir() -> Result<PathBuf> {
    models_dir_from(|name| std::env::var_os(name).map(PathBuf::from))
}

/// The models folder for an environment read through `var`.
pub fn models_dir_from(var: impl Fn(&str) -> Option<PathBuf>) -> Result<PathBuf> {
    board_support::cache_dir::cache_dir_from(var)
        .map(|cache| cache.join("models"))
        .ok_or(Error::NoCacheDirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_live_in_the_cache_and_no_cache_is_an_error() {
        let var = |name: &str| (name == "HOME").then(|| PathBuf::from("/home/u"));
        assert_eq!(
            models_dir_from(var).unwrap(),
            PathBuf::from("/home/u/.cache/carapace/models")
        );
        assert!(matches!(
            models_dir_from(|_| None),
            Err(Error::NoCacheDirectory)
        ));
    }
}
