//! `carapace publish`: a bundle into an update repository, a directory to serve as it is from
//! any static web server, CDN or object store (the layout is carapace_update::layout's), with
//! the channel's pointer signed for the rollout fraction given.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use carapace_update::{
    KeyKind, PublishRequest, Published, SecretKey, SignedKeyList, permille_from_fraction,
};

use crate::error::Result;

pub struct PublishOptions {
    pub bundle: PathBuf,
    pub to: PathBuf,
    pub channel: String,
    /// A fraction of the fleet, 0 to 1.
    pub rollout: String,
    pub key: PathBuf,
    /// A newer key list to serve as keys.json.
    pub key_list: Option<PathBuf>,
}

pub fn publish(options: &PublishOptions) -> Result<Published> {
    let rollout_permille = permille_from_fraction(&options.rollout)?;
    let key = SecretKey::load(&options.key, KeyKind::Signing)?;
    let key_list = match &options.key_list {
        Some(path) => {
            let bytes = carapace_update::bounded::read_file(
                path,
                carapace_update::bounded::MAX_KEY_LIST,
                "key list",
            )?;
            Some(SignedKeyList::parse(&bytes)?)
        }
        None => None,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::create_dir_all(&options.to).map_err(|source| crate::Error::Io {
        context: format!("create {}", options.to.display()),
        source,
    })?;
    Ok(carapace_update::publish(&PublishRequest {
        bundle: &options.bundle,
        repository: &options.to,
        channel: &options.channel,
        rollout_permille,
        key: &key,
        key_list: key_list.as_ref(),
        now,
    })?)
}
