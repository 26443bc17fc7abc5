//! A small TPM 2.0 client for one job: sealing /data's key to the box's TPM against the
//! Secure Boot state (PCR 7) and unsealing it on the next boot.
//!
//! Hand-written rather than a crate: tss-esapi binds the C TSS (libtss2-*, dynamic, while the
//! disk helper is a static binary), and Debian's tpm2-tools would bring libcurl and its
//! dependencies onto a box that has no use for them. Seven commands with fixed templates are
//! small enough to own; the response reader is bounds-checked and fuzzed (fuzz/, and a
//! fixed-seed test on stable).
//!
//! Sealing and unsealing run in sessions salted with the SRK's public key, and the key crosses
//! the bus masked with that session's key (session.rs): a probe on the bus to a discrete TPM
//! reads nothing it can use. The limit, said plainly: a device posing as the TPM from the
//! start is not detected.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod commands;
mod error;
mod seal;
mod session;
mod transport;
pub mod wire;

pub use commands::Tpm;
pub use error::{Error, Refusal};
pub use seal::{PCR_SECURE_BOOT, SealedSecret, seal, unseal};
pub use transport::{DEVICE, Device, Socket, Transport};
