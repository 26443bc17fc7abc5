//! skill.toml: what a skill with code declares, beside its SKILL.md. The owner approves exactly
//! this (the tools the model may call, the hosts its HTTP may reach, the secrets its requests
//! may carry), and the box enforces it: the model sees only these tools, the skill host lets
//! HTTP reach only these hosts, a request carries only the secrets declared and given.
//!
//! ```toml
//! hosts = ["api.open-meteo.com", "geocoding-api.open-meteo.com"]
//! secrets = ["WEATHER_API_KEY"]   # the owner gives each one: /secret <skill> NAME <value>
//!
//! # Optional: a secret only for some of the hosts (without this, for any of them).
//! [secret_hosts]
//! WEATHER_API_KEY = ["api.open-meteo.com"]
//!
//! [[tool]]
//! name = "forecast"
//! description = "Tomorrow's weather for a place"
//! # Asks the owner before every call (it sends, buys or deletes something).
//! writes = false
//! [tool.parameters]          # a JSON Schema object, as the LLM APIs take it
//! type = "object"
//! required = ["place"]
//! properties.place = { type = "string" }
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The declaration, in a skill's folder.
pub const DECLARATION_FILE: &str = "skill.toml";
/// The skill's code, built by `carapace skill build`, in a skill's folder.
pub const COMPONENT_FILE: &str = "skill.wasm";
/// The largest component taken (a Python skill carries its interpreter: about 18 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
const MAX_TOOLS: usize = 16;
const MAX_TOOL_DESCRIPTION_CHARS: usize = 512;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Host names (exact) the skill's HTTP may reach, over HTTPS.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Names of secrets the owner may give it (`WEATHER_API_KEY`): its code writes
    /// `{{secret:NAME}}` where a value goes in a request, and never sees the value (secrets.rs).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Where a secret may go when not to every one of `hosts`: its name to some of them, so a
    /// key for one API never reaches the skill's other hosts.
    #[serde(default)]
    pub secret_hosts: BTreeMap<String, Vec<String>>,
    #[serde(rename = "tool")]
    pub tools: Vec<ToolDeclaration>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDeclaration {
    pub name: String,
    pub description: String,
    /// A tool that sends, spends or deletes: asked about every time unless the owner says
    /// otherwise.
    #[serde(default)]
    pub writes: bool,
    /// JSON Schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    pub parameters: serde_json::Value,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

impl Declaration {
    /// Parses and checks skill.toml's `text`; `Err` says what is wrong in it.
    pub fn parse(text: &str) -> Result<Declaration, String> {
        let declaration: Declaration = toml::from_str(text).map_err(|err| err.to_string())?;
        if declaration.tools.is_empty() {
            return Err("it declares no [[tool]]; a skill with code offers at least one".into());
        }
        if declaration.tools.len() > MAX_TOOLS {
            return Err(format!(
                "it declares {} tools; {MAX_TOOLS} at most",
                declaration.tools.len()
            ));
        }
        for (at, tool) in declaration.tools.iter().enumerate() {
            check_tool_name(&tool.name)?;
            if declaration.tools[..at].iter().any(|t| t.name == tool.name) {
                return Err(format!("tool {} is declared twice", tool.name));
            }
            let chars = tool.description.trim().chars().count();
            if chars == 0 || chars > MAX_TOOL_DESCRIPTION_CHARS {
                return Err(format!(
                    "tool {}: its description must have 1 to {MAX_TOOL_DESCRIPTION_CHARS} characters",
                    tool.name
                ));
            }
            if tool.parameters.get("type").and_then(|t| t.as_str()) != Some("object") {
                return Err(format!(
                    "tool {}: its parameters must be a JSON Schema with type = \"object\"",
                    tool.name
                ));
            }
        }
        for host in &declaration.hosts {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                return Err(format!(
                    "hosts: {host:?} is not a host name (write the name only, as api.example.org)"
                ));
            }
        }
        for (at, name) in declaration.secrets.iter().enumerate() {
            crate::secrets::check_name(name).map_err(|problem| format!("secrets: {problem}"))?;
            if declaration.secrets[..at].contains(name) {
                return Err(format!("secrets: {name} is declared twice"));
            }
        }
        for (name, hosts) in &declaration.secret_hosts {
            if !declaration.secrets.contains(name) {
                return Err(format!(
                    "secret_hosts: {name} is not one of its secrets; declare it in `secrets`"
                ));
            }
            if hosts.is_empty() {
                return Err(format!(
                    "secret_hosts: {name} lists no host; leave it out to send it to any of `hosts`"
                ));
            }
            if let Some(host) = hosts.iter().find(|host| !declaration.reaches(host)) {
                return Err(format!(
                    "secret_hosts: {name} names {host}, which is not one of `hosts`"
                ));
            }
        }
        Ok(declaration)
    }

    fn reaches(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The hosts secret `name` may go to, when `[secret_hosts]` narrows them; None: any of
    /// `hosts`.
    pub fn secret_only_for(&self, name: &str) -> Option<&[String]> {
        self.secret_hosts.get(name).map(Vec::as_slice)
    }

    /// The declaration in skill folder `dir`, if it has one.
    pub fn load(dir: &Path) -> Result<Option<Declaration>, crate::Error> {
        let path = dir.join(DECLARATION_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Declaration::parse(&text)
                .map(Some)
                .map_err(|problem| crate::Error::SkillMd { path, problem }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(crate::Error::Io {
                action: "read",
                path,
                source,
            }),
        }
    }
}

/// A tool name the LLM APIs take and Python and JavaScript can name a function by.
fn check_tool_name(name: &str) -> Result<(), String> {
    let valid = (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tool name {name:?}: use 1 to 48 lower-case letters, digits and _, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_with_tools_hosts_and_schemas_parses() {
        let declaration = Declaration::parse(
            "hosts = [\"api.example.org\"]\n\n[[tool]]\nname = \"forecast\"\ndescription = \"Weather\"\n[tool.parameters]\ntype = \"object\"\nrequired = [\"place\"]\nproperties.place = { type = \"string\" }\n\n[[tool]]\nname = \"order_tea\"\ndescription = \"Buys tea\"\nwrites = true\n",
        )
        .unwrap();
        assert_eq!(declaration.hosts, ["api.example.org"]);
        assert_eq!(
            declaration.tools[0].parameters["properties"]["place"]["type"],
            "string"
        );
        assert!(!declaration.tools[0].writes);
        assert!(declaration.tools[1].writes);
        assert_eq!(declaration.tools[1].parameters["type"], "object");
    }

    #[test]
    fn a_bad_declaration_says_what_is_wrong() {
        let err = |text: &str| Declaration::parse(text).unwrap_err();
        assert!(
            err("hosts = []\n").contains("missing field `tool`"),
            "{}",
            err("hosts = []\n")
        );
        assert!(err("tool = []\n").starts_with("it declares no [[tool]]"));
        let tool = "[[tool]]\nname = \"a\"\ndescription = \"d\"\n";
        assert_eq!(err(&format!("{tool}{tool}")), "tool a is declared twice");
        assert!(
            err("[[tool]]\nname = \"Get-It\"\ndescription = \"d\"\n")
                .starts_with("tool name \"Get-It\"")
        );
        assert!(
            err(&format!("hosts = [\"https://x.org/\"]\n{tool}"))
                .starts_with("hosts: \"https://x.org/\" is not a host name")
        );
        assert!(
            err(&format!("{tool}[tool.parameters]\ntype = \"string\"\n"))
                .contains("type = \"object\"")
        );
        assert!(err(&format!("shell = true\n{tool}")).contains("unknown field `shell`"));
        assert!(
            err(&format!("secrets = [\"api-key\"]\n{tool}"))
                .starts_with("secrets: secret name \"api-key\": use 1 to 64 upper-case")
        );
        assert_eq!(
            err(&format!("secrets = [\"KEY\", \"KEY\"]\n{tool}")),
            "secrets: KEY is declared twice"
        );
        let with_key = "hosts = [\"a.org\", \"b.org\"]\nsecrets = [\"KEY\"]\n";
        assert_eq!(
            err(&format!(
                "{with_key}[secret_hosts]\nTOKEN = [\"a.org\"]\n{tool}"
            )),
            "secret_hosts: TOKEN is not one of its secrets; declare it in `secrets`"
        );
        assert_eq!(
            err(&format!(
                "{with_key}[secret_hosts]\nKEY = [\"c.org\"]\n{tool}"
            )),
            "secret_hosts: KEY names c.org, which is not one of `hosts`"
        );
        assert!(
            err(&format!("{with_key}[secret_hosts]\nKEY = []\n{tool}"))
                .starts_with("secret_hosts: KEY lists no host")
        );
    }

    #[test]
    fn a_secret_goes_to_the_hosts_secret_hosts_names_or_else_to_any() {
        let declaration = Declaration::parse(
            "hosts = [\"api.example.org\", \"geo.example.org\"]\nsecrets = [\"KEY\", \"OTHER\"]\n\
             [secret_hosts]\nKEY = [\"API.example.org\"]\n[[tool]]\nname = \"a\"\ndescription = \"d\"\n",
        )
        .unwrap();
        assert_eq!(
            declaration.secret_only_for("KEY"),
            Some(&["API.example.org".to_string()][..])
        );
        assert_eq!(declaration.secret_only_for("OTHER"), None);
    }
}
