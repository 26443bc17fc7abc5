//! The names the box may reach, and on which TCP ports. The DNS stub answers only names
//! that match an entry, and puts the addresses it answers into the firewall's allow sets
//! with these ports; everything else stays unreachable.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// RFC 1035's limit for a name in text form without the trailing dot.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// HTTPS: what every service we talk to uses.
pub const DEFAULT_PORTS: [u16; 1] = [443];

/// One allowlisted name: exactly that name, or (`*.suffix`) any name strictly below the
/// suffix. Stored lower case without a trailing dot, the form [`normalise`] gives queries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NamePattern {
    Exact(String),
    /// `*.feishu.cn` holds "feishu.cn"; it matches "a.feishu.cn", "a.b.feishu.cn", not
    /// "feishu.cn" itself.
    Below(String),
}

impl NamePattern {
    /// Whether a queried name falls under this pattern; `name` may have any case and a
    /// trailing dot.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalise(name);
        match self {
            NamePattern::Exact(exact) => name == *exact,
            NamePattern::Below(suffix) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
        }
    }
}

impl FromStr for NamePattern {
    type Err = Error;

    fn from_str(text: &str) -> Result<NamePattern, Error> {
        let bad = |problem: &str| Error::BadName {
            name: text.to_owned(),
            problem: problem.to_owned(),
        };
        let name = normalise(text);
        if name.parse::<IpAddr>().is_ok() {
            return Err(bad(
                "is an IP address; the allowlist holds names, whose addresses the DNS stub \
                 allows as it answers them",
            ));
        }
        let (pattern, body) = match name.strip_prefix("*.") {
            Some(suffix) => (NamePattern::Below(suffix.to_owned()), suffix),
            None => (NamePattern::Exact(name.clone()), name.as_str()),
        };
        if body.is_empty() {
            return Err(bad(
                "is empty; write a host name such as \"api.telegram.org\"",
            ));
        }
        if body.len() > MAX_NAME_LEN {
            return Err(bad("is longer than 253 characters"));
        }
        for label in body.split('.') {
            check_label(label).map_err(|problem| bad(&problem))?;
        }
        if matches!(pattern, NamePattern::Below(_)) && !body.contains('.') {
            return Err(bad(
                "a wildcard needs at least two labels after \"*.\" (\"*.feishu.cn\"), so it \
                 cannot open a whole top-level domain",
            ));
        }
        Ok(pattern)
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label == "*" {
        return Err("'*' may only be the whole first label, as in \"*.example.org\"".into());
    }
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label {label:?} must be 1 to {MAX_LABEL_LEN} characters (no empty labels, no \"..\")"
        ));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "label {label:?} may hold only letters, digits and '-' (write IDN names in their \
             xn-- form)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} must not start or end with '-'"));
    }
    Ok(())
}

impl TryFrom<String> for NamePattern {
    type Error = Error;

    fn try_from(text: String) -> Result<NamePattern, Error> {
        text.parse()
    }
}

impl From<NamePattern> for String {
    fn from(pattern: NamePattern) -> String {
        pattern.to_string()
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Exact(name) => f.write_str(name),
            NamePattern::Below(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// The form names are compared in: lower case, without the root's trailing dot.
pub fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A name and the TCP ports the box may open to its addresses; TOML
/// `{ name = "api.telegram.org", ports = [443] }`, ports defaulting to `[443]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AllowEntryFields")]
pub struct AllowEntry {
    pub name: NamePattern,
    /// Sorted, without duplicates, never empty, never 0.
    pub ports: Vec<u16>,
}

impl AllowEntry {
    pub fn new(name: NamePattern, ports: &[u16]) -> Result<AllowEntry, Error> {
        let bad = |problem: &str| Error::ConfigField {
            field: format!("allow {name} ports"),
            problem: problem.to_owned(),
        };
        if ports.is_empty() {
            return Err(bad("is empty; leave `ports` out for [443]"));
        }
        if ports.contains(&0) {
            return Err(bad("contains port 0; ports are 1 to 65535"));
        }
        let ports: BTreeSet<u16> = ports.iter().copied().collect();
        Ok(AllowEntry {
            name,
            ports: ports.into_iter().collect(),
        })
    }

    /// An entry for HTTPS (port 443) only.
    pub fn https(name: NamePattern) -> AllowEntry {
        AllowEntry {
            name,
            ports: DEFAULT_PORTS.to_vec(),
        }
    }
}

/// What the TOML holds, before [`AllowEntry::new`] checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowEntryFields {
    name: NamePattern,
    #[serde(default = "default_ports")]
    ports: Vec<u16>,
}

fn default_ports() -> Vec<u16> {
    DEFAULT_PORTS.to_vec()
}

impl TryFrom<AllowEntryFields> for AllowEntry {
    type Error = Error;

    fn try_from(fields: AllowEntryFields) -> Result<AllowEntry, Error> {
        AllowEntry::new(fields.name, &fields.ports)
    }
}

/// The entries the DNS stub answers from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

impl Allowlist {
    pub fn new(entries: Vec<AllowEntry>) -> Allowlist {
        Allowlist { entries }
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// The ports the box may reach the addresses of `name` on: the sorted union of the
    /// ports of every matching entry, or `None` when no entry matches (the stub refuses the
    /// name).
    pub fn ports(&self, name: &str) -> Option<Vec<u16>> {
        let mut matched = false;
        let mut ports = BTreeSet::new();
        for entry in self.entries.iter().filter(|e| e.name.matches(name)) {
            matched = true;
            ports.extend(entry.ports.iter().copied());
        }
        matched.then(|| ports.into_iter().collect())
    }
}

/// The instant-messaging services an agent can talk through; each brings its API hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImService {
    Telegram,
    Feishu,
    Lark,
}

impl ImService {
    /// The hosts the service's bot API and event stream live on.
    pub fn hosts(self) -> &'static [&'static str] {
        match self {
            ImService::Telegram => &["api.telegram.org"],
            // The long-connection (WebSocket) event endpoint is handed out per session under
            // a host of the same domain, so the domain's subtree is allowed.
            ImService::Feishu => &["open.feishu.cn", "*.feishu.cn"],
            ImService::Lark => &["open.larksuite.com", "*.larksuite.com"],
        }
    }
}

/// The allowlist every image starts with: the IM services' API hosts, the LLM host and the
/// update server, all on HTTPS. The recipe's extra entries are added to it.
pub fn default_allowlist(
    im: &[ImService],
    llm_host: Option<&NamePattern>,
    update_host: Option<&NamePattern>,
) -> Vec<AllowEntry> {
    let mut entries: Vec<AllowEntry> = Vec::new();
    let mut push = |entry: AllowEntry| {
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    };
    for service in im {
        for host in service.hosts() {
            // The table above holds only valid names; a typo there fails every test below.
            if let Ok(name) = host.parse() {
                push(AllowEntry::https(name));
            }
        }
    }
    for host in [llm_host, update_host].into_iter().flatten() {
        push(AllowEntry::https(host.clone()));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> NamePattern {
        text.parse().expect(text)
    }

    fn refusal(text: &str) -> String {
        text.parse::<NamePattern>().expect_err(text).to_string()
    }

    #[test]
    fn exact_names_match_in_any_case_with_or_without_the_root_dot() {
        let exact = pattern("API.Telegram.org.");
        assert_eq!(exact, NamePattern::Exact("api.telegram.org".into()));
        assert!(exact.matches("api.telegram.org"));
        assert!(exact.matches("API.TELEGRAM.ORG."));
        assert!(!exact.matches("x.api.telegram.org"));
        assert!(!exact.matches("telegram.org"));
    }

    #[test]
    fn a_wildcard_matches_strictly_below_its_suffix() {
        let below = pattern("*.feishu.cn");
        assert!(below.matches("msg-frontier.feishu.cn"));
        assert!(below.matches("a.b.feishu.cn."));
        assert!(!below.matches("feishu.cn"));
        assert!(!below.matches("evilfeishu.cn"));
        assert!(!below.matches(".feishu.cn"));
        assert_eq!(below.to_string(), "*.feishu.cn");
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert!(refusal("").contains("empty"));
        assert!(refusal("a..b").contains("1 to 63"));
        assert!(refusal(&format!("{}.org", "a".repeat(64))).contains("1 to 63"));
        assert!(refusal(&["a".repeat(63).as_str(); 4].join(".")).contains("253"));
        assert!(refusal("-a.org").contains("start or end"));
        assert!(refusal("a_b.org").contains("letters, digits"));
        assert!(refusal("a.*.org").contains("first label"));
        assert!(refusal("**.org").contains("letters, digits"));
        assert!(refusal("*.com").contains("top-level"));
        assert!(refusal("192.0.2.1").contains("IP address"));
        assert!(refusal("2001:db8::1").contains("IP address"));
        let longest = ["a".repeat(63).as_str(); 3].join(".") + "." + &"b".repeat(61);
        assert_eq!(longest.len(), 253);
        pattern(&longest);
    }

    #[test]
    fn ports_are_the_union_of_the_matching_entries() {
        let list = Allowlist::new(vec![
            AllowEntry::new(pattern("api.example.org"), &[8443, 443]).unwrap(),
            AllowEntry::new(pattern("*.example.org"), &[443, 5222]).unwrap(),
        ]);
        assert_eq!(list.ports("API.example.org."), Some(vec![443, 5222, 8443]));
        assert_eq!(list.ports("chat.example.org"), Some(vec![443, 5222]));
        assert_eq!(list.ports("example.org"), None);
        assert_eq!(list.ports("example.com"), None);
    }

    #[test]
    fn entries_read_from_toml_default_to_https_and_refuse_bad_ports() {
        #[derive(Deserialize)]
        struct Doc {
            allow: Vec<AllowEntry>,
        }
        let doc: Doc = toml::from_str(
            "allow = [{ name = \"a.org\" }, { name = \"b.org\", ports = [22, 22] }]",
        )
        .unwrap();
        assert_eq!(doc.allow[0].ports, [443]);
        assert_eq!(doc.allow[1].ports, [22]);
        for (bad, reason) in [
            ("allow = [{ name = \"a.org\", ports = [] }]", "is empty"),
            ("allow = [{ name = \"a.org\", ports = [0] }]", "port 0"),
            ("allow = [{ name = \"a.org\", ports = [65536] }]", "65536"),
            (
                "allow = [{ name = \"a.org\", port = [1] }]",
                "unknown field",
            ),
            ("allow = [{ name = \"a..org\" }]", "\"a..org\""),
        ] {
            let err = toml::from_str::<Doc>(bad).err().expect(bad).to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn the_default_allowlist_holds_the_services_hosts_once() {
        let llm = pattern("api.openai.com");
        let entries = default_allowlist(
            &[ImService::Telegram, ImService::Lark, ImService::Telegram],
            Some(&llm),
            Some(&llm),
        );
        let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "api.telegram.org",
                "open.larksuite.com",
                "*.larksuite.com",
                "api.openai.com"
            ]
        );
        assert!(entries.iter().all(|e| e.ports == [443]));
        let feishu = Allowlist::new(default_allowlist(&[ImService::Feishu], None, None));
        assert_eq!(feishu.ports("msg-frontier.feishu.cn"), Some(vec![443]));
        assert_eq!(feishu.ports("open.feishu.cn"), Some(vec![443]));
        assert_eq!(feishu.ports("feishu.cn"), None);
    }
}
