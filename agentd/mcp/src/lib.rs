//! agentd's MCP client: the tools of remote Model Context Protocol servers the owner added,
//! over the streamable HTTP transport (protocol 2025-06-18, or 2025-03-26). The box is only
//! a client: it runs no MCP server and listens on no port.
//!
//! [`McpClient::connect`] begins a session, [`McpClient::list_tools`] lists the tools (names
//! the LLM APIs would refuse are left out), [`McpClient::call_tool`] calls one, and [`trim`]
//! makes the list fit the prompt. `rpc` is one HTTP exchange (JSON or SSE), `content` turns
//! a tool's result into text.

mod client;
mod content;
mod error;
mod rpc;
mod tools;
mod trim;

use std::time::Duration;

pub use client::{McpClient, PROTOCOL_VERSION, SUPPORTED_VERSIONS, ServerInfo};
pub use error::Error;
pub use tools::{LeftOut, Tool, ToolList, valid_tool_name};
pub use trim::{Budget, ToolSpec, Trimmed, spec_bytes, trim};

/// What one request to a server may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole exchange, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// The most bytes of one answer (a whole SSE stream counts as one).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(60),
            max_body: 1 << 20,
        }
    }
}
