//! Remote MCP servers the owner added (`/mcp add NAME URL`): each server's address and its
//! tools as the model sees them (trimmed to the prompt's budget when it was added) are kept in
//! the store, so the tools are in the registry from the start without the network; a call
//! opens the server's session when it first needs it. Each tool is `<server>__<tool>` to the
//! model and, like a skill's code, runs only as the owner allows (approvals.rs).

use std::sync::Arc;

use carapace_http::Client;
use carapace_llm::ToolSpec;
use carapace_mcp::McpClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approvals::Approval;
use crate::error::Error;
use crate::store::Store;
use crate::tools::{Tool, ToolContext, ToolFuture};

const SERVERS_KEY: &str = "mcp-servers";
/// The most of the prompt one server's tools take.
pub const SERVER_BUDGET_BYTES: usize = 2048;
/// A server's name: short, for tool names (`<server>__<tool>` stays under 64 characters).
const NAME_MAX: usize = 12;

/// What adding a server needs.
#[derive(Clone)]
pub struct Access {
    pub http: Client,
    /// A server's host joins netd's allowlist before the box first calls it.
    pub netd: crate::netd_control::NetdControl,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub name: String,
    /// May carry a key (some servers take one in the path): only in the store, never in the
    /// audit log or a message.
    pub url: String,
    pub tools: Vec<carapace_mcp::ToolSpec>,
}

pub fn load(store: &Store) -> Result<Vec<Server>, Error> {
    match store.settings(SERVERS_KEY)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| Error::StoreData {
            table: "settings (MCP servers)",
            reason: e.to_string(),
        }),
        None => Ok(Vec::new()),
    }
}

pub fn save(store: &Store, servers: &[Server]) -> Result<(), Error> {
    let text = serde_json::to_string(servers).map_err(|e| Error::StoreData {
        table: "settings (MCP servers)",
        reason: e.to_string(),
    })?;
    store.put_setting(SERVERS_KEY, Some(&text))
}

/// Checks a server's name; `Err` says what to use.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=NAME_MAX).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "{name:?} cannot name a server: use 1 to {NAME_MAX} lower-case letters, digits and -, \
             starting with a letter"
        )),
    }
}

/// Lets the box reach `url`'s host (netd's allowlist; the loopback needs no entry), connects,
/// lists the server's tools and trims them to the budget: the server to keep, and the tools
/// left out with why.
pub async fn discover(
    access: &Access,
    name: &str,
    url: &str,
) -> Result<(Server, Vec<String>), String> {
    carapace_http::checked_url(url).map_err(|e| e.to_string())?;
    if let Some((host, port)) = crate::reach::mcp_host(url) {
        access
            .netd
            .allow(&host, port)
            .await
            .map_err(|e| format!("the box may not reach {host}: {e}"))?;
    }
    let client = McpClient::connect(access.http.clone(), url, carapace_mcp::Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    let listed = client.list_tools().await.map_err(|e| e.to_string())?;
    let _ = client.close().await;
    let budget = carapace_mcp::Budget {
        bytes: SERVER_BUDGET_BYTES,
        ..carapace_mcp::Budget::default()
    };
    let trimmed = carapace_mcp::trim(&listed.tools, &budget);
    let mut left_out: Vec<String> = listed
        .left_out
        .iter()
        .map(|l| format!("{} ({})", l.name, l.reason))
        .collect();
    left_out.extend(
        trimmed
            .left_out
            .iter()
            .map(|n| format!("{n} (no room in the prompt)")),
    );
    let server = Server {
        name: name.to_string(),
        url: url.to_string(),
        tools: trimmed.specs,
    };
    Ok((server, left_out))
}

/// The registry's tools for `server`, sharing one session.
pub fn tools(server: &Server, http: &Client) -> Vec<Box<dyn Tool>> {
    let session = Arc::new(Session {
        url: server.url.clone(),
        http: http.clone(),
        client: tokio::sync::Mutex::new(None),
    });
    server
        .tools
        .iter()
        .map(|spec| {
            Box::new(McpTool {
                server: server.name.clone(),
                spec: spec.clone(),
                session: Arc::clone(&session),
            }) as Box<dyn Tool>
        })
        .collect()
}

/// The model's name for tool `tool` of server `server`.
pub fn tool_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
}

struct Session {
    url: String,
    http: Client,
    client: tokio::sync::Mutex<Option<McpClient>>,
}

struct McpTool {
    server: String,
    spec: carapace_mcp::ToolSpec,
    session: Arc<Session>,
}

impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: tool_name(&self.server, &self.spec.name),
            description: format!("(MCP {}) {}", self.server, self.spec.description),
            parameters: self.spec.parameters.clone(),
        }
    }

    /// A remote server's tool is a new power: asked the first time when its server says it
    /// only reads, else every time (it may send, spend or delete; MCP's default).
    fn approval(&self) -> Approval {
        match self.spec.read_only {
            true => Approval::FirstTime,
            false => Approval::EveryTime,
        }
    }

    fn call<'a>(&'a self, _: &'a ToolContext<'a>, arguments: &'a Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let mut client = self.session.client.lock().await;
            if client.is_none() {
                let connected = McpClient::connect(
                    self.session.http.clone(),
                    &self.session.url,
                    carapace_mcp::Limits::default(),
                )
                .await
                .map_err(|e| format!("MCP server {}: {e}", self.server))?;
                *client = Some(connected);
            }
            let Some(connected) = client.as_ref() else {
                return Err(format!("MCP server {}: no session", self.server));
            };
            let result = connected
                .call_tool(&self.spec.name, arguments.clone())
                .await;
            if let Err(
                carapace_mcp::Error::Unreachable { .. }
                | carapace_mcp::Error::Timeout { .. }
                | carapace_mcp::Error::SessionLost { .. },
            ) = &result
            {
                // The next call begins a new session.
                *client = None;
            }
            result.map_err(|e| format!("MCP server {}: {e}", self.server))
        })
    }
}
