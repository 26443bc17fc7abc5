//! `/mcp`: the remote MCP servers whose tools the model may use (mcp_servers.rs). The owner
//! adds one with `/mcp add NAME URL` (its tools are listed now and run only as the owner allows)
//! and removes it with `/mcp remove NAME`.

use crate::agent::Agent;
use crate::error::Error;
use crate::mcp_servers::{self, Server};

pub async fn mcp(
    agent: &mut Agent,
    owner: bool,
    args: &[String],
    now: u64,
) -> Result<String, Error> {
    let mut servers = mcp_servers::load(&agent.store)?;
    match args {
        [] => Ok(list(&servers)),
        [verb, ..] if !owner && (verb == "add" || verb == "remove") => {
            Ok("Only the owner can do that.".into())
        }
        [verb, name, url] if verb == "add" => {
            if let Err(why) = mcp_servers::check_name(name) {
                return Ok(why);
            }
            if agent.skills.catalog.get(name).is_some() {
                return Ok(format!(
                    "A skill is named {name}; their tools would share names. Pick another name."
                ));
            }
            if servers.iter().any(|s| &s.name == name) {
                return Ok(format!(
                    "There is a server named {name} already; /mcp remove {name} first."
                ));
            }
            let Some(access) = agent.mcp.clone() else {
                return Ok("This agent was started without network access for MCP.".into());
            };
            let (server, left_out) = match mcp_servers::discover(&access, name, url).await {
                Ok(found) => found,
                Err(why) => return Ok(format!("I could not add {name}: {why}")),
            };
            for tool in mcp_servers::tools(&server, &access.http) {
                agent.tools.add(tool);
            }
            let names: Vec<String> = server
                .tools
                .iter()
                .map(|t| mcp_servers::tool_name(name, &t.name))
                .collect();
            agent.record(
                "mcp",
                &format!("the owner added server {name} with {} tools", names.len()),
                now,
            );
            servers.push(server);
            mcp_servers::save(&agent.store, &servers)?;
            let mut text = format!(
                "Added {name}: {}. Each runs only once you allow it.",
                if names.is_empty() {
                    "no tools".to_string()
                } else {
                    names.join(", ")
                }
            );
            if !left_out.is_empty() {
                text.push_str(&format!("\nLeft out: {}", left_out.join("; ")));
            }
            Ok(text)
        }
        [verb, name] if verb == "remove" => {
            let Some(at) = servers.iter().position(|s| &s.name == name) else {
                return Ok(format!("There is no server named {name}; /mcp lists them."));
            };
            let removed = servers.remove(at);
            mcp_servers::save(&agent.store, &servers)?;
            agent
                .tools
                .remove_prefixed(&mcp_servers::tool_name(name, ""));
            // Its host leaves netd's allowlist unless a skill or another server reaches it.
            crate::reach::release(
                agent,
                crate::reach::mcp_host(&removed.url).into_iter().collect(),
            )
            .await?;
            agent.record("mcp", &format!("the owner removed server {name}"), now);
            Ok(format!("Removed {name} and its tools."))
        }
        _ => Ok("Send /mcp, /mcp add NAME URL or /mcp remove NAME.".into()),
    }
}

fn list(servers: &[Server]) -> String {
    if servers.is_empty() {
        return "No MCP servers. Add one: /mcp add NAME https://…".into();
    }
    let mut text = String::from("MCP servers:");
    for server in servers {
        let names: Vec<&str> = server.tools.iter().map(|t| t.name.as_str()).collect();
        text.push_str(&format!("\n{}: {}", server.name, names.join(", ")));
    }
    text
}
