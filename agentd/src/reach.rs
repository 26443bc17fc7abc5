//! What the owner's additions reach through netd's allowlist, and taking back what none of
//! them needs any more: a removed skill's declared hosts, a removed MCP server's host. Only
//! agentd's own `allow` requests put entries into the owner's part of netd's allowlist (the
//! image's part holds the IM services, the LLM and the update server), so an entry no skill
//! and no server needs is one nothing on the box needs.

use std::collections::BTreeSet;

use crate::agent::Agent;
use crate::error::Error;

/// The port a skill's declared host is reached on.
pub const HTTPS_PORT: u16 = 443;

/// The host and port an MCP server's `url` is reached on through netd; None on the loopback
/// (no entry needed) or for what is not a URL.
pub fn mcp_host(url: &str) -> Option<(String, u16)> {
    let parsed = carapace_http::checked_url(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let loopback = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    match loopback {
        true => None,
        false => Some((host, parsed.port_or_known_default().unwrap_or(HTTPS_PORT))),
    }
}

/// Every host and port the skills on the box and the MCP servers reach.
fn needed(agent: &Agent) -> Result<BTreeSet<(String, u16)>, Error> {
    let mut needed: BTreeSet<(String, u16)> = agent
        .skills
        .catalog
        .skills()
        .iter()
        .flat_map(|skill| skill.code.iter().flat_map(|code| &code.hosts))
        .map(|host| (host.to_ascii_lowercase(), HTTPS_PORT))
        .collect();
    for server in crate::mcp_servers::load(&agent.store)? {
        needed.extend(mcp_host(&server.url));
    }
    Ok(needed)
}

/// Takes each of `reached` (what something that just left the box reached) that nothing else
/// needs out of netd's allowlist; what netd refuses stays, said on the console.
pub async fn release(agent: &Agent, reached: Vec<(String, u16)>) -> Result<(), Error> {
    let Some(access) = agent.mcp.as_ref() else {
        return Ok(());
    };
    let needed = needed(agent)?;
    let released: BTreeSet<(String, u16)> = reached
        .into_iter()
        .map(|(host, port)| (host.to_ascii_lowercase(), port))
        .filter(|reach| !needed.contains(reach))
        .collect();
    for (host, port) in released {
        if let Err(error) = access.netd.disallow(&host, port).await {
            eprintln!("netd: {host} port {port} stays allowed: {error}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mcp_server_is_reached_at_its_host_and_port_and_the_loopback_needs_nothing() {
        assert_eq!(
            mcp_host("https://MCP.Example.net/mcp"),
            Some(("mcp.example.net".into(), 443))
        );
        assert_eq!(
            mcp_host("https://mcp.example.net:8443/mcp"),
            Some(("mcp.example.net".into(), 8443))
        );
        assert_eq!(mcp_host("http://127.0.0.1:3000/mcp"), None);
        assert_eq!(mcp_host("http://[::1]:3000/mcp"), None);
        assert_eq!(mcp_host("not a url"), None);
    }
}
