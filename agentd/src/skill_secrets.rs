//! The secrets the owner gives skills (`/secret <skill> NAME <value>`), kept in the store (on
//! /data, encrypted where the box has a TPM), and how they reach a skill's requests: agentd
//! fills the references of a request it is about to send and scrubs the values out of the
//! answer (carapace_skills::secrets), so the skill's code, its sandbox, the model and the audit
//! log never hold a value.

use carapace_skills::Skill;
use carapace_skills::sandbox_protocol::{HttpRequest, HttpResponse};
use carapace_skills::secrets::{self, Context};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::store::Store;

/// Settings key of one value: `skill-secret:<skill>:<NAME>`.
const KEY_PREFIX: &str = "skill-secret:";
/// A value's length in characters: enough for a key or a token, not a file.
const VALUE_CHARS: std::ops::RangeInclusive<usize> = 4..=4096;

fn key(skill: &str, name: &str) -> String {
    format!("{KEY_PREFIX}{skill}:{name}")
}

/// The values the owner gave `skill`, for the secrets it declares.
pub struct Given {
    skill: String,
    declared: Vec<String>,
    /// skill.toml's `[secret_hosts]`: a secret named here goes only to these hosts.
    only_for: std::collections::BTreeMap<String, Vec<String>>,
    values: Vec<(String, Zeroizing<String>)>,
}

/// The secrets `skill` declares (none without code).
fn declared(skill: &Skill) -> &[String] {
    skill.code.as_ref().map_or(&[], |code| &code.secrets)
}

/// Whether `skill` has a value for each secret it declares, in declaration order.
pub fn status(store: &Store, skill: &Skill) -> Result<Vec<(String, bool)>, Error> {
    declared(skill)
        .iter()
        .map(|name| {
            Ok((
                name.clone(),
                store.settings(&key(&skill.name, name))?.is_some(),
            ))
        })
        .collect()
}

/// What the owner gave `skill`.
pub fn given(store: &Store, skill: &Skill) -> Result<Given, Error> {
    let declared = declared(skill).to_vec();
    let mut values = Vec::new();
    for name in &declared {
        if let Some(value) = store.settings(&key(&skill.name, name))? {
            values.push((name.clone(), Zeroizing::new(value)));
        }
    }
    Ok(Given {
        skill: skill.name.clone(),
        declared,
        only_for: skill
            .code
            .as_ref()
            .map(|code| code.secret_hosts.clone())
            .unwrap_or_default(),
        values,
    })
}

/// Keeps `value` as `skill`'s secret `name`; `Ok(Err)` says to the owner why not.
pub fn give(
    store: &Store,
    skill: &Skill,
    name: &str,
    value: &str,
) -> Result<Result<(), String>, Error> {
    if !declared(skill).iter().any(|declared| declared == name) {
        return Ok(Err(format!(
            "Skill {} has no secret {name}; {}",
            skill.name,
            declares(&skill.name, declared(skill))
        )));
    }
    let chars = value.chars().count();
    if !VALUE_CHARS.contains(&chars) || value.chars().any(char::is_control) {
        return Ok(Err(format!(
            "A secret's value is one line of {} to {} characters; nothing was kept.",
            VALUE_CHARS.start(),
            VALUE_CHARS.end()
        )));
    }
    store.put_setting(&key(&skill.name, name), Some(value))?;
    Ok(Ok(()))
}

/// Forgets `skill`'s secret `name`; whether there was one.
pub fn forget(store: &Store, skill: &str, name: &str) -> Result<bool, Error> {
    let key = key(skill, name);
    let had = store.settings(&key)?.is_some();
    store.put_setting(&key, None)?;
    Ok(had)
}

fn declares(skill: &str, declared: &[String]) -> String {
    match declared {
        [] => format!("{skill} declares none."),
        names => format!("it declares {}.", names.join(", ")),
    }
}

impl Given {
    /// Secret `name`'s value for a request to `host` (None: the URL names none agentd can
    /// read, as when a reference stands in the host itself).
    fn value(&self, name: &str, host: Option<&str>) -> Result<String, String> {
        if !self.declared.iter().any(|declared| declared == name) {
            return Err(format!(
                "this skill asked for the secret {name}, which it does not declare; {}",
                declares(&self.skill, &self.declared)
            ));
        }
        if let Some(hosts) = self.only_for.get(name) {
            let allowed =
                host.is_some_and(|host| hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
            if !allowed {
                return Err(format!(
                    "the secret {name} goes only to {} (skill.toml's secret_hosts), not to {}",
                    hosts.join(", "),
                    host.unwrap_or("a URL without a plain host name")
                ));
            }
        }
        match self.values.iter().find(|(given, _)| given == name) {
            Some((_, value)) => Ok(value.to_string()),
            None => Err(format!(
                "the owner has not given skill {} its secret {name}; the owner can, with \
                 /secret {} {name} <value>",
                self.skill, self.skill
            )),
        }
    }

    /// `request` with the values in place of its references, in the URL, the headers'
    /// values and a text body.
    pub fn fill(&self, request: &HttpRequest) -> Result<HttpRequest, String> {
        let host = reqwest::Url::parse(&request.url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string));
        let value = |name: &str| self.value(name, host.as_deref());
        let mut filled = request.clone();
        filled.url = secrets::fill(&request.url, Context::Url, value)?;
        for (_, header) in &mut filled.headers {
            *header = secrets::fill(header, Context::Text, value)?;
        }
        if let Ok(body) = std::str::from_utf8(&request.body) {
            filled.body = secrets::fill(body, Context::Text, value)?.into_bytes();
        }
        Ok(filled)
    }

    /// Each given value by name, as filled in: as it is, and percent-encoded where a URL
    /// carries it (an API that echoes the URL it was asked gives that form back).
    fn forms(&self) -> Vec<(&str, Zeroizing<String>)> {
        let mut forms = Vec::new();
        for (name, value) in &self.values {
            let encoded = Zeroizing::new(secrets::url_encoded(value));
            if *encoded != **value {
                forms.push((name.as_str(), encoded));
            }
            forms.push((name.as_str(), value.clone()));
        }
        forms
    }

    /// `bytes` with every form of every value replaced by its secret's reference.
    fn scrubbed(&self, bytes: &[u8]) -> Vec<u8> {
        let forms = self.forms();
        let pairs: Vec<(&str, &str)> = forms
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        secrets::scrub(bytes, &pairs)
    }

    /// `response` with each value replaced by its reference, before the skill sees it.
    pub fn scrub(&self, response: &mut HttpResponse) {
        if self.values.is_empty() {
            return;
        }
        response.body = self.scrubbed(&response.body);
        for (_, header) in &mut response.headers {
            *header = self.scrub_text(header);
        }
    }

    /// `text` (an error from sending) with the values scrubbed out.
    pub fn scrub_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.scrubbed(text.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather(dir: &std::path::Path) -> Skill {
        let folder = dir.join("weather");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("SKILL.md"),
            "---\nname: weather\ndescription: Forecasts.\n---\nCall forecast.\n",
        )
        .unwrap();
        std::fs::write(
            folder.join("skill.toml"),
            "hosts = [\"api.example.org\"]\nsecrets = [\"KEY\", \"OTHER\"]\n[[tool]]\nname = \"forecast\"\ndescription = \"d\"\n",
        )
        .unwrap();
        let (catalog, errors) = carapace_skills::Catalog::load(dir);
        assert!(errors.is_empty(), "{errors:?}");
        catalog.skills()[0].clone()
    }

    #[test]
    fn a_given_secret_fills_requests_and_is_scrubbed_from_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let skill = weather(&dir.path().join("skills"));
        let request = HttpRequest {
            method: "GET".into(),
            url: "https://api.example.org/v1?key={{secret:KEY}}".into(),
            headers: vec![("authorization".into(), "Bearer {{secret:KEY}}".into())],
            body: b"{\"k\":\"{{secret:KEY}}\"}".to_vec(),
        };

        // Not given yet: the request is not made, and the skill hears how the owner gives it.
        let refused = given(&store, &skill).unwrap().fill(&request).unwrap_err();
        assert_eq!(
            refused,
            "the owner has not given skill weather its secret KEY; the owner can, with /secret \
             weather KEY <value>"
        );

        assert_eq!(give(&store, &skill, "KEY", "s3cr&t").unwrap(), Ok(()));
        assert_eq!(
            status(&store, &skill).unwrap(),
            [("KEY".to_string(), true), ("OTHER".to_string(), false)]
        );
        let secrets = given(&store, &skill).unwrap();
        let filled = secrets.fill(&request).unwrap();
        assert_eq!(filled.url, "https://api.example.org/v1?key=s3cr%26t");
        assert_eq!(filled.headers[0].1, "Bearer s3cr&t");
        assert_eq!(filled.body, b"{\"k\":\"s3cr&t\"}");

        let mut answer = HttpResponse {
            status: 401,
            headers: vec![("x-echo".into(), "s3cr&t".into())],
            body: b"bad key s3cr&t in /v1?key=s3cr%26t".to_vec(),
        };
        secrets.scrub(&mut answer);
        assert_eq!(
            answer.body,
            b"bad key {{secret:KEY}} in /v1?key={{secret:KEY}}"
        );
        assert_eq!(answer.headers[0].1, "{{secret:KEY}}");

        // A name the skill never declared is refused, given or not.
        let mut undeclared = request.clone();
        undeclared.headers[0].1 = "{{secret:ROOT_PASSWORD}}".into();
        assert!(
            secrets
                .fill(&undeclared)
                .unwrap_err()
                .starts_with("this skill asked for the secret ROOT_PASSWORD, which it does not")
        );

        assert!(forget(&store, "weather", "KEY").unwrap());
        assert!(!forget(&store, "weather", "KEY").unwrap());
        assert!(given(&store, &skill).unwrap().fill(&request).is_err());
    }

    #[test]
    fn a_secret_with_secret_hosts_goes_only_to_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let folder = dir.path().join("skills/geo");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("SKILL.md"),
            "---\nname: geo\ndescription: Places.\n---\nCall find.\n",
        )
        .unwrap();
        std::fs::write(
            folder.join("skill.toml"),
            "hosts = [\"api.example.org\", \"tiles.example.net\"]\nsecrets = [\"KEY\"]\n\
             [secret_hosts]\nKEY = [\"api.example.org\"]\n[[tool]]\nname = \"find\"\ndescription = \"d\"\n",
        )
        .unwrap();
        let (catalog, errors) = carapace_skills::Catalog::load(&dir.path().join("skills"));
        assert!(errors.is_empty(), "{errors:?}");
        let skill = catalog.skills()[0].clone();
        assert_eq!(give(&store, &skill, "KEY", "s3cret").unwrap(), Ok(()));
        let secrets = given(&store, &skill).unwrap();
        let to = |url: &str| HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![("authorization".into(), "Bearer {{secret:KEY}}".into())],
            body: Vec::new(),
        };
        let filled = secrets.fill(&to("https://API.example.org/v1")).unwrap();
        assert_eq!(filled.headers[0].1, "Bearer s3cret");
        // Another of the skill's own hosts: the key does not go there.
        assert_eq!(
            secrets
                .fill(&to("https://tiles.example.net/z/1"))
                .unwrap_err(),
            "the secret KEY goes only to api.example.org (skill.toml's secret_hosts), not to \
             tiles.example.net"
        );
        // Nor where no plain host name can be read before filling.
        assert!(
            secrets
                .fill(&to("https://{{secret:KEY}}.example.org/"))
                .unwrap_err()
                .contains("not to a URL without a plain host name")
        );
    }

    #[test]
    fn only_declared_secrets_with_one_line_values_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let skill = weather(&dir.path().join("skills"));
        assert_eq!(
            give(&store, &skill, "TOKEN", "abcdef").unwrap(),
            Err("Skill weather has no secret TOKEN; it declares KEY, OTHER.".into())
        );
        for bad in ["abc", "two\nlines"] {
            assert!(
                give(&store, &skill, "KEY", bad)
                    .unwrap()
                    .unwrap_err()
                    .starts_with("A secret's value is one line of 4 to 4096 characters"),
                "{bad:?}"
            );
        }
        assert_eq!(
            status(&store, &skill).unwrap()[0],
            ("KEY".to_string(), false)
        );
    }
}
