//! A connection to one MCP server: the session (its id and protocol version, sent on every
//! request after `initialize`), the request ids, and the calls the agent makes. A server that
//! forgets the session answers 404; the client then begins a new one and sends the request
//! again, once. That is safe for tool calls too: a server that does not know the session has
//! not run the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use reqwest::Url;
use serde_json::{Value, json};

use crate::Limits;
use crate::content::outcome;
use crate::error::Error;
use crate::rpc::{self, Endpoint, Session};
use crate::tools::{ToolList, valid_tool_name};

/// The version this client asks for first.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// The versions it speaks: their tools, transport and lifecycle are the same for a client
/// that declares no capabilities.
pub const SUPPORTED_VERSIONS: [&str; 2] = [PROTOCOL_VERSION, "2025-03-26"];
/// The most `tools/list` pages read: a server whose cursor never ends is not listed forever.
const MOST_PAGES: usize = 16;

/// Who the server said it is at initialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    /// The protocol version agreed on.
    pub protocol_version: String,
}

pub struct McpClient {
    http: reqwest::Client,
    url: Url,
    /// host[:port], the name errors use.
    server: String,
    limits: Limits,
    info: ServerInfo,
    session: Mutex<Session>,
    /// Held while a new session begins, so that calls that all met the 404 begin one only.
    renewing: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

impl McpClient {
    /// Connects to the MCP server at `url` (https, or http to this box itself): initializes a
    /// session with it. `http` is agentd's client; `limits` bound every request.
    pub async fn connect(
        http: reqwest::Client,
        url: &str,
        limits: Limits,
    ) -> Result<McpClient, Error> {
        let url = carapace_http::checked_url(url).map_err(Error::BadUrl)?;
        let host = url.host_str().unwrap_or_default();
        let server = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let next_id = AtomicU64::new(1);
        let at = Endpoint {
            http: &http,
            url: &url,
            server: &server,
            limits,
        };
        let (session, info) = begin_session(&at, next_id.fetch_add(1, Ordering::Relaxed)).await?;
        Ok(McpClient {
            http,
            url,
            server,
            limits,
            info,
            session: Mutex::new(session),
            renewing: tokio::sync::Mutex::new(()),
            next_id,
        })
    }

    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The server's name in errors and logs: host[:port] of its URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Every tool the server offers (all pages); the ones that cannot be used are in
    /// `left_out` with the reason.
    pub async fn list_tools(&self) -> Result<ToolList, Error> {
        let mut list = ToolList::default();
        let mut cursor: Option<String> = None;
        for _ in 0..MOST_PAGES {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            let Some(tools) = page.get("tools").and_then(Value::as_array) else {
                return Err(self.bad_reply("tools/list", "it has no tools array"));
            };
            tools.iter().for_each(|entry| list.take(entry));
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(list),
            }
        }
        Err(self.bad_reply("tools/list", &format!("it went on past {MOST_PAGES} pages")))
    }

    /// Calls tool `name` with `arguments` (a JSON object); the text of what it gave.
    /// A tool that ran and failed is [`Error::ToolFailed`] with the server's words.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<String, Error> {
        if !valid_tool_name(name) {
            return Err(Error::BadToolName { name: name.into() });
        }
        let arguments = match arguments {
            Value::Null => json!({}),
            Value::Object(_) => arguments,
            other => {
                return Err(Error::BadArguments {
                    tool: name.into(),
                    found: other.to_string(),
                });
            }
        };
        let params = json!({"name": name, "arguments": arguments});
        let result = self
            .request("tools/call", params)
            .await
            .map_err(|error| match error {
                Error::Rpc {
                    server,
                    code,
                    message,
                    ..
                } => Error::Rpc {
                    server,
                    method: format!("the call of tool {name}"),
                    code,
                    message,
                },
                other => other,
            })?;
        let outcome = outcome(&result);
        if outcome.is_error {
            let message = if outcome.text.is_empty() {
                "(it gave no reason)".into()
            } else {
                outcome.text
            };
            return Err(Error::ToolFailed {
                server: self.server.clone(),
                tool: name.into(),
                message,
            });
        }
        Ok(outcome.text)
    }

    /// Ends the session at the server (it may also just let it expire).
    pub async fn close(self) -> Result<(), Error> {
        let session = self.session();
        if session.id.is_none() {
            return Ok(());
        }
        rpc::end_session(&self.endpoint(), &session).await
    }

    /// Sends request `method` in the current session; its result. A lost session is begun
    /// again once.
    async fn request(&self, method: &str, params: Value) -> Result<Value, Error> {
        let session = self.session();
        let id = self.next_id();
        match rpc::request(&self.endpoint(), &session, id, method, params.clone()).await {
            Err(Error::SessionLost { .. }) => {
                self.renew(&session).await?;
                let (at, session) = (self.endpoint(), self.session());
                let answer = rpc::request(&at, &session, self.next_id(), method, params).await?;
                Ok(answer.result)
            }
            answer => Ok(answer?.result),
        }
    }

    /// Begins a new session in place of `lost`, unless another call already did.
    async fn renew(&self, lost: &Session) -> Result<(), Error> {
        let _renewing = self.renewing.lock().await;
        if self.session() != *lost {
            return Ok(());
        }
        let (session, _) = begin_session(&self.endpoint(), self.next_id()).await?;
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = session;
        Ok(())
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            http: &self.http,
            url: &self.url,
            server: &self.server,
            limits: self.limits,
        }
    }

    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn bad_reply(&self, method: &str, reason: &str) -> Error {
        Error::BadReply {
            server: self.server.clone(),
            method: method.into(),
            reason: reason.into(),
        }
    }
}

/// `initialize`, then `notifications/initialized`: the new session and who the server is.
async fn begin_session(at: &Endpoint<'_>, id: u64) -> Result<(Session, ServerInfo), Error> {
    let params = json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "carapace", "version": env!("CARGO_PKG_VERSION")},
    });
    let answer = rpc::request(at, &Session::default(), id, "initialize", params).await?;
    let text = |value: &Value, name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let version = text(&answer.result, "protocolVersion");
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(Error::UnsupportedVersion {
            server: at.server.to_owned(),
            version,
            supported: SUPPORTED_VERSIONS.join(" and "),
        });
    }
    let visible_ascii =
        |id: &String| !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if let Some(id) = answer.session_id.as_ref().filter(|id| !visible_ascii(id)) {
        let reason = format!("its session id {id:?} is not visible ASCII");
        return Err(Error::BadReply {
            server: at.server.to_owned(),
            method: "initialize".into(),
            reason,
        });
    }
    let session = Session {
        id: answer.session_id,
        protocol: Some(version.clone()),
    };
    rpc::notify(at, &session, "notifications/initialized").await?;
    let server_info = answer.result.get("serverInfo").unwrap_or(&Value::Null);
    let info = ServerInfo {
        name: text(server_info, "name"),
        version: text(server_info, "version"),
        protocol_version: version,
    };
    Ok((session, info))
}
