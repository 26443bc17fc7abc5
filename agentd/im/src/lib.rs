//! agentd's IM channels, outbound only: Telegram (Bot API long polling) and Feishu/Lark (the
//! long-connection WebSocket). Each is a [`Channel`]; `types.rs` holds the contract with
//! agentd's core, and `receiver.rs` the loop that feeds a channel's batches into the core.

pub mod backoff;
pub mod feishu;
pub mod receiver;
mod split;
mod status_text;
pub mod telegram;
pub mod types;

pub use backoff::Backoff;
pub use feishu::Feishu;
pub use receiver::{run_receiver, run_receiver_with};
pub use telegram::Telegram;
pub use types::*;
