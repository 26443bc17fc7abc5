//! The network policy of a Carapace box, as plain data shared by the image builder, PID 1
//! and netd: which names the box may reach (the allowlist), netd's configuration file, and
//! the nftables ruleset ("nobody reaches the box, the box reaches only its allowlist") with
//! the set elements netd adds as DNS answers come in. Generation is pure; the only I/O is
//! running `nft` ([`apply`]).

pub mod allowlist;
pub mod apply;
pub mod config;
pub mod elements;
pub mod error;
pub mod names;
pub mod ruleset;
mod ruleset_expr;
pub mod status;

pub use allowlist::{AllowEntry, Allowlist, ImService, NamePattern, default_allowlist};
pub use apply::{NFT_PROGRAM, apply, apply_with};
pub use config::NetdConfig;
pub use elements::{ElementOp, L4Proto, allow_elements, flush_allow_sets, netd_elements};
pub use error::Error;
pub use names::TABLE;
/// The document type every generator here returns, so users need not name the nftables crate.
pub use nftables::schema::Nftables;
pub use ruleset::{BASE_RULESET_PATH, FirewallUids, base_ruleset};
pub use status::{DropCounter, FirewallStatus, status};
