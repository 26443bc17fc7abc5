//! The owner's side of a box, shared by agentd and the `carapace` CLI on the owner's computer:
//! - `settings`: the owner-settings file (IM bot, LLM providers, optional pairing code). The
//!   CLI checks it and puts it on the boot partition as [`ESP_FILE_NAME`]; the box moves it
//!   into /data at its next start and agentd imports it while the box is unpaired.
//! - `pairing`: the one-time pairing code and the deep link that carries it.
//! - `qr`: the link as a QR code, in half-block characters (terminals, the Linux console) or
//!   as a PNG.

pub mod pairing;
pub mod qr;
pub mod settings;

pub use pairing::PairingCode;
pub use settings::{ApiKind, FeishuSettings, LlmProvider, OwnerSettings, TelegramSettings};

/// The owner-settings file's name in the root of the boot partition (ESP).
pub const ESP_FILE_NAME: &str = "carapace-owner.toml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("owner settings: {0}")]
    Settings(String),
    #[error("pairing code {code:?}: {reason}")]
    PairingCode { code: String, reason: String },
    #[error("making the QR code: {0}")]
    Qr(String),
    #[error("no random numbers from the kernel: {0}")]
    Entropy(String),
}
