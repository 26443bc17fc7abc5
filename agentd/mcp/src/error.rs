//! The one error type of the MCP client. Servers are named by host (and port), never by their
//! whole URL: a remote MCP server's address often carries a key in its path or query.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("MCP server address: {0}")]
    BadUrl(carapace_http::Error),
    #[error(
        "MCP server {server} is unreachable: {reason}; check the address and that the server is up"
    )]
    Unreachable { server: String, reason: String },
    #[error("MCP server {server} did not answer {method} within {seconds} s; try again later")]
    Timeout {
        server: String,
        method: String,
        seconds: f32,
    },
    #[error("MCP server {server} answered {method} with HTTP {status}: {detail}{}", status_hint(*.status))]
    Status {
        server: String,
        method: String,
        status: u16,
        detail: String,
    },
    #[error(
        "MCP server {server} ended the session (HTTP 404) again right after a new one began; remove the server and add it again"
    )]
    SessionLost { server: String },
    #[error(
        "MCP server {server} sent more than {limit_kib} KiB for {method}; carapace takes no bigger answers"
    )]
    TooLarge {
        server: String,
        method: String,
        limit_kib: usize,
    },
    #[error("MCP server {server} answered {method} with something that is not MCP: {reason}")]
    BadReply {
        server: String,
        method: String,
        reason: String,
    },
    #[error(
        "MCP server {server} speaks MCP version {version}; carapace speaks {supported}, so it cannot use this server"
    )]
    UnsupportedVersion {
        server: String,
        version: String,
        supported: String,
    },
    #[error("MCP server {server} refused {method}: {message} (JSON-RPC error {code})")]
    Rpc {
        server: String,
        method: String,
        code: i64,
        message: String,
    },
    #[error("tool {tool} of MCP server {server} failed: {message}")]
    ToolFailed {
        server: String,
        tool: String,
        message: String,
    },
    #[error("{name:?} is not an MCP tool name (1 to 64 letters, digits, _ and -)")]
    BadToolName { name: String },
    #[error("the arguments of tool {tool} must be a JSON object, not {found}")]
    BadArguments { tool: String, found: String },
}

/// What to do about the statuses an owner can act on.
fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "; the server wants authorization, which carapace does not send: use a URL that carries its access key, or a server that needs none"
        }
        404 | 405 => "; check the URL: it must be the server's MCP endpoint (often ending in /mcp)",
        _ => "",
    }
}
