//! The one error type of this crate. Configuration errors name the field and say what to
//! write instead; nft errors carry what nft printed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netd configuration: {message}")]
    ConfigSyntax { message: String },

    #[error("netd configuration: `{field}`: {problem}")]
    ConfigField { field: String, problem: String },

    #[error("allowlist name {name:?}: {problem}")]
    BadName { name: String, problem: String },

    #[error("cannot write the netd configuration as TOML: {message}")]
    ConfigEncode { message: String },

    #[error("cannot encode the nftables commands as JSON: {source}")]
    RulesetEncode {
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot start {}: {source}; the image must contain nft (Debian package nftables)", .program.display())]
    NftStart {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot hand the ruleset to {} on its standard input: {source}", .program.display())]
    NftInput {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} refused the ruleset ({status}): {stderr}", .program.display())]
    NftFailed {
        program: PathBuf,
        status: String,
        stderr: String,
    },

    #[error("the listing of table inet carapace is not nft's JSON: {source}")]
    StatusJson {
        #[source]
        source: serde_json::Error,
    },

    #[error("the listing of table inet carapace has no {what}; was the base ruleset loaded?")]
    StatusMissing { what: String },
}
