//! The one error type of the update formats. Each variant names what failed and what to do;
//! the box logs it as the reason it refused an update, the CLI prints it as is.

use std::path::PathBuf;

use crate::digest::Sha256Digest;
use crate::keys::{KeyId, KeyKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },

    #[error(
        "{what} is larger than {limit} bytes, more than a valid one can be; it is not one of ours"
    )]
    TooLarge { what: String, limit: u64 },

    #[error(
        "the signature on {what} does not verify with key {key_id}: it was changed after signing \
         (or damaged in transit); fetch it again, and never install it as it is"
    )]
    BadSignature { what: String, key_id: KeyId },

    #[error(
        "{what} is signed by key {key_id}, which the trusted key list (serial {serial}) does not \
         name; sign with a listed key, or publish a key list (signed with the root key) that \
         names it"
    )]
    UnknownKey {
        what: String,
        key_id: KeyId,
        serial: u64,
    },

    #[error(
        "{what} is signed by key {key_id}, which the trusted key list (serial {serial}) revokes; \
         sign it again with a key that is not revoked"
    )]
    KeyRevoked {
        what: String,
        key_id: KeyId,
        serial: u64,
    },

    #[error(
        "{what} is signed by key {key_id}, which was valid until {not_after} (seconds since \
         1970) and it is now {now}; sign it again with a current key (or check the box's clock)"
    )]
    KeyExpired {
        what: String,
        key_id: KeyId,
        not_after: u64,
        now: u64,
    },

    #[error("{whose} is a {found} key where a {expected} key is needed: {hint}")]
    WrongKeyKind {
        whose: String,
        expected: KeyKind,
        found: KeyKind,
        hint: &'static str,
    },

    #[error(
        "secret key {path} can be read by others (mode {mode:o}); it must be private: \
         chmod 600 {path}",
        path = path.display()
    )]
    KeyFileExposed { path: PathBuf, mode: u32 },

    #[error(
        "{path} already exists; a key is never overwritten: choose another name, or move the \
         old key away first",
        path = path.display()
    )]
    KeyFileExists { path: PathBuf },

    #[error("no randomness for a new key: {0}")]
    Entropy(getrandom::Error),

    #[error(
        "the update is for board {offered}, but this box is a {running} board; point the box at \
         its own board's updates"
    )]
    WrongBoard { running: String, offered: String },

    #[error("the channel pointer is for channel {offered}, but the box follows {expected}")]
    WrongChannel { expected: String, offered: String },

    #[error(
        "version {offered} is older than the running version {running}: a downgrade, refused \
         unless forced"
    )]
    Downgrade { running: String, offered: String },

    #[error("version {version} is the one running; reinstalling it must be forced")]
    AlreadyRunning { version: String },

    #[error(
        "version {offered} installs only over {min_from} or newer, and this box runs {running}; \
         install a release in between first"
    )]
    BelowMinFrom {
        running: String,
        offered: String,
        min_from: String,
    },

    #[error(
        "the {channel} channel pointer has serial {offered}, older than serial {last} this box \
         has already seen: an old pointer played back (or a stale cache); fetch it again later"
    )]
    PointerReplayed {
        channel: String,
        last: u64,
        offered: u64,
    },

    #[error(
        "the manifest fetched has sha256 {found}, but the channel pointer names {expected}: it is \
         not the manifest the pointer was signed for; fetch it again"
    )]
    ManifestMismatch {
        expected: Sha256Digest,
        found: Sha256Digest,
    },

    #[error(
        "the channel pointer offers version {pointer}, but its manifest is version {manifest}; \
         the channel must be published again"
    )]
    VersionMismatch { pointer: String, manifest: String },

    #[error(
        "{what} names key {inside} but its signature is by key {signer}; sign it with the key it \
         names"
    )]
    SignerMismatch {
        what: String,
        inside: KeyId,
        signer: KeyId,
    },

    #[error("chunk {sha256} is not at {path}; download it (again)", path = path.display())]
    ChunkMissing { sha256: Sha256Digest, path: PathBuf },

    #[error("chunk {sha256} is truncated: {found} of its {expected} bytes; download it again")]
    ChunkTruncated {
        sha256: Sha256Digest,
        expected: u64,
        found: u64,
    },

    #[error(
        "chunk {sha256} ({location}) does not hash to its name ({problem}): it was damaged or \
         tampered with; download it again"
    )]
    ChunkCorrupt {
        sha256: Sha256Digest,
        location: String,
        problem: String,
    },

    #[error(
        "the assembled {artifact} has sha256 {found}, not the manifest's {expected}; what was \
         written is not usable and must not be booted"
    )]
    AssembledMismatch {
        artifact: String,
        expected: Sha256Digest,
        found: Sha256Digest,
    },

    #[error(
        "the patch for {file} applies to a file of the running slot that changed ({path}: \
         {problem}); install again: the box then downloads the file's chunks",
        path = path.display()
    )]
    PatchSourceChanged {
        file: String,
        path: PathBuf,
        problem: String,
    },

    #[error(
        "the patch for {file} does not apply: {reason}; it is damaged or was made for another \
         file, and what was written must not be booted"
    )]
    PatchFailed { file: String, reason: String },

    #[error(
        "the key list is signed by key {signer}, not by the root key {root} the box trusts; \
         sign it with that root key (`carapace keys sign --root`)"
    )]
    NotRootSigned { root: KeyId, signer: KeyId },

    #[error(
        "key list serial {offered} is not newer than serial {current}, which {place} already \
         has; sign the new list with a higher --serial"
    )]
    KeyListNotNewer {
        place: String,
        current: u64,
        offered: u64,
    },

    #[error(
        "version {version} is already published in {path} with other contents; a published \
         version never changes: build and bundle a new version",
        path = path.display()
    )]
    VersionTaken { version: String, path: PathBuf },

    #[error(
        "{repo} holds the channels of board {holds}, not {offered}; publish each board to a \
         directory of its own (e.g. {repo}/../{offered})",
        repo = repo.display()
    )]
    RepositoryBoard {
        repo: PathBuf,
        holds: String,
        offered: String,
    },

    #[error(
        "the {channel} channel already offers {current}, newer than {offered}; boxes would \
         refuse the older version: publish a newer one"
    )]
    ChannelDowngrade {
        channel: String,
        current: String,
        offered: String,
    },

    #[error(
        "rollout {value:?} is not a fraction from 0 to 1; give e.g. 0.1 for a tenth of the fleet, \
         1 for all of it"
    )]
    InvalidRollout { value: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Malformed {
            what: what.into(),
            reason: reason.into(),
        }
    }

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
