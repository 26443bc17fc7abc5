//! The firewall's base policy (/etc/carapace/firewall.json, which the builder writes from the
//! service table): loaded with nft before any link is up, so the box never has a moment
//! without it. netd only adds and removes set elements later, so its crash leaves the policy
//! whole. When loading fails, the services that use the network are held (stage2.rs).

use std::time::Duration;

use crate::oneshot;

pub const BASE_POLICY: &str = "/etc/carapace/firewall.json";
const NFT: &str = "/usr/sbin/nft";
/// nft loads a ruleset of this size in milliseconds; this only bounds a wedged one.
const DEADLINE: Duration = Duration::from_secs(30);

/// `Ok(false)` when the image has no policy (and so no network services).
pub fn load_base_policy() -> Result<bool, String> {
    if !std::path::Path::new(BASE_POLICY).exists() {
        return Ok(false);
    }
    let (_, status) = oneshot::run(NFT, &["-j", "-f", BASE_POLICY], DEADLINE, "nft")?;
    (status.success().then_some(true)).ok_or_else(|| format!("{NFT} -j -f {BASE_POLICY}: {status}"))
}
