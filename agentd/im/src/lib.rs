//! agentd's IM channels, outbound only: Telegram (Bot API long polling) and Feishu/Lark (the
//! long-connection WebSocket). Each is a [`Channel`]; `types.rs` holds the contract with
//! agentd's core.

pub mod types;

pub use types::*;
