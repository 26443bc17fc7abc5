//! agentd's LLM client: OpenAI-compatible chat completions and the Anthropic Messages API,
//! both streamed (SSE), with tool calls, and several providers tried in order.
//!
//! `types` is the contract with agentd's turn loop; [`Llm`] in `client` is the one entry
//! point; `openai` and `anthropic` each hold one wire format; `sse` is the stream parser
//! both share; `transport` is one HTTP exchange; `status` maps HTTP failures.

mod answer;
mod anthropic;
mod client;
mod error;
mod openai;
pub mod sse;
mod status;
mod transport;
pub mod types;

pub use client::Llm;
pub use error::{Error, ProviderId, http_reason};
pub use transport::Timeouts;
pub use types::*;
