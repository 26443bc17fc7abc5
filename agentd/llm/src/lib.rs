//! agentd's LLM client: OpenAI-compatible chat completions and the Anthropic Messages API,
//! both streamed (SSE), with tool calls, and several providers tried in order.
//!
//! The types here are the contract with agentd's turn loop; `types.rs` holds them.

pub mod types;

pub use types::*;
