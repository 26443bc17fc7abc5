//! The owner's settings: which IM bot the box is, which LLM providers it thinks with, which
//! Wi-Fi networks it joins, and (in the first-boot file only) the pairing code `carapace
//! build` printed. One TOML file:
//!
//! ```toml
//! pairing_code = "AbCdEfGhIjKlMnOp"     # first-boot file only; made by `carapace build`
//!
//! [telegram]
//! bot = "my_carapace_bot"               # the bot's user name, for the t.me link
//! token = "123456789:AA..."             # from @BotFather
//!
//! [[llm]]                               # tried in order; the next one when one fails
//! api = "openai"                        # or "anthropic"
//! base_url = "https://api.openai.com/v1"
//! model = "gpt-4o-mini"
//! api_key = "sk-..."
//!
//! [[wifi]]                              # optional; joined in this order of preference
//! ssid = "My Home"
//! passphrase = "correct horse battery"  # 8 to 63 characters; "" for an open network
//! ```
//! Secrets (token, app_secret, api_key, passphrase) never appear in Debug output or in
//! [`summary`]. The Wi-Fi networks are netd's to join: agentd hands them over on netd's
//! control socket, as a trial that is kept only if the box still reaches its LLM and chat.
//!
//! From the owner's chat (`/settings set <key> <value>`), besides the keys [`summary`] shows:
//! `wifi.add "SSID" "passphrase"` adds a network (the SSID alone for an open one),
//! `wifi.remove "SSID"` removes one; the double quotes are needed only around words with
//! spaces. With no network left, the image's own networks (if any) apply.
//!
//! [`summary`]: OwnerSettings::summary

use board_support::wifi::{WifiNetwork, list_problem};
use serde::{Deserialize, Serialize};

use crate::{Error, PairingCode};

pub const TELEGRAM_API: &str = "https://api.telegram.org";
pub const FEISHU_API: &str = "https://open.feishu.cn";
const DEFAULT_MAX_TOKENS: u32 = 1024;

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feishu: Option<FeishuSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm: Vec<LlmProvider>,
    /// netd's rules (board-support's): SSID 1 to 32 bytes, passphrase 8 to 63 printable
    /// ASCII characters or empty for an open network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wifi: Vec<WifiNetwork>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    pub bot: String,
    pub token: String,
    #[serde(default = "telegram_api")]
    pub api_base: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuSettings {
    pub app_id: String,
    pub app_secret: String,
    /// `https://open.feishu.cn` (Feishu) or `https://open.larksuite.com` (Lark).
    #[serde(default = "feishu_api")]
    pub domain: String,
}

/// Which wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer`, SSE `data:` chunks.
    OpenAi,
    /// `POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`, SSE events.
    Anthropic,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmProvider {
    pub api: ApiKind,
    pub base_url: String,
    pub model: String,
    pub api_key: String,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn telegram_api() -> String {
    TELEGRAM_API.into()
}
fn feishu_api() -> String {
    FEISHU_API.into()
}
fn default_max_tokens() -> u32 {
    DEFAULT_MAX_TOKENS
}

impl OwnerSettings {
    /// Reads and checks a settings file's text.
    pub fn parse(text: &str) -> Result<OwnerSettings, Error> {
        let settings: OwnerSettings =
            toml::from_str(text).map_err(|error| Error::Settings(error.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn to_toml(&self) -> String {
        // Only strings, integers and tables: serializing cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// What a box needs to work: an IM link and a provider, each complete.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |text: String| Err(Error::Settings(text));
        if self.telegram.is_none() && self.feishu.is_none() {
            return bad("no IM link: add a [telegram] table (bot and token from @BotFather) or a [feishu] table (app_id and app_secret)".into());
        }
        if let Some(telegram) = &self.telegram {
            check_bot_name(&telegram.bot)?;
            let (id, secret) = telegram.token.split_once(':').unwrap_or(("", ""));
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || secret.len() < 20 {
                return bad("telegram.token does not look like a bot token (digits, ':', then the secret, as @BotFather gives it)".into());
            }
            check_base_url("telegram.api_base", &telegram.api_base)?;
        }
        if let Some(feishu) = &self.feishu {
            if feishu.app_id.is_empty() || feishu.app_secret.is_empty() {
                return bad("feishu needs app_id and app_secret (from the app's Credentials page in the developer console)".into());
            }
            check_base_url("feishu.domain", &feishu.domain)?;
        }
        if self.llm.is_empty() {
            return bad(
                "no LLM provider: add an [[llm]] table with api, base_url, model and api_key"
                    .into(),
            );
        }
        for (index, provider) in self.llm.iter().enumerate() {
            check_base_url(&format!("llm[{index}].base_url"), &provider.base_url)?;
            if provider.model.trim().is_empty() {
                return bad(format!(
                    "llm[{index}].model is empty: name the model, e.g. gpt-4o-mini"
                ));
            }
            if provider.api_key.trim().is_empty() {
                return bad(format!("llm[{index}].api_key is empty"));
            }
            if provider.max_tokens == 0 {
                return bad(format!(
                    "llm[{index}].max_tokens is 0: leave it out for {DEFAULT_MAX_TOKENS}"
                ));
            }
        }
        if let Some((index, problem)) = list_problem(&self.wifi) {
            return bad(format!(
                "wifi.{index}.{}: {}",
                problem.field, problem.problem
            ));
        }
        if let Some(code) = &self.pairing_code {
            PairingCode::parse(code)?;
        }
        Ok(())
    }

    /// The settings for the owner's eyes: every field, secrets as their last 4 characters.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        if let Some(t) = &self.telegram {
            lines.push(format!("telegram.bot = {}", t.bot));
            lines.push(format!("telegram.token = {}", masked(&t.token)));
            if t.api_base != TELEGRAM_API {
                lines.push(format!("telegram.api_base = {}", t.api_base));
            }
        }
        if let Some(f) = &self.feishu {
            lines.push(format!("feishu.app_id = {}", f.app_id));
            lines.push(format!("feishu.app_secret = {}", masked(&f.app_secret)));
            lines.push(format!("feishu.domain = {}", f.domain));
        }
        for (i, p) in self.llm.iter().enumerate() {
            let api = match p.api {
                ApiKind::OpenAi => "openai",
                ApiKind::Anthropic => "anthropic",
            };
            lines.push(format!("llm.{i}.api = {api}"));
            lines.push(format!("llm.{i}.base_url = {}", p.base_url));
            lines.push(format!("llm.{i}.model = {}", p.model));
            lines.push(format!("llm.{i}.api_key = {}", masked(&p.api_key)));
            lines.push(format!("llm.{i}.max_tokens = {}", p.max_tokens));
        }
        for (i, network) in self.wifi.iter().enumerate() {
            lines.push(format!("wifi.{i}.ssid = {}", network.ssid));
            // Not even the last characters: a Wi-Fi passphrase is often short.
            let passphrase = if network.is_open() {
                "(none: an open network)"
            } else {
                "…(set)"
            };
            lines.push(format!("wifi.{i}.passphrase = {passphrase}"));
        }
        lines.join("\n")
    }

    /// A copy with one field changed, by the names [`summary`](Self::summary) shows
    /// (`llm.0.model`, `telegram.token`…), or a Wi-Fi network added or removed (`wifi.add`,
    /// `wifi.remove`, see the module's documentation), checked as a whole.
    pub fn with(&self, key: &str, value: &str) -> Result<OwnerSettings, Error> {
        let mut next = self.clone();
        if let Some(change) = key.strip_prefix("wifi.") {
            next.change_wifi(key, change, value)?;
            next.validate()?;
            return Ok(next);
        }
        let value = value.trim().to_string();
        let unknown = || {
            Error::Settings(format!(
                "there is no setting {key:?}; /settings lists them (llm.0.model, telegram.token, …)"
            ))
        };
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["telegram", field] => {
                let t = next.telegram.as_mut().ok_or_else(unknown)?;
                match *field {
                    "bot" => t.bot = value,
                    "token" => t.token = value,
                    "api_base" => t.api_base = value,
                    _ => return Err(unknown()),
                }
            }
            ["feishu", field] => {
                let f = next.feishu.as_mut().ok_or_else(unknown)?;
                match *field {
                    "app_id" => f.app_id = value,
                    "app_secret" => f.app_secret = value,
                    "domain" => f.domain = value,
                    _ => return Err(unknown()),
                }
            }
            ["llm", index, field] => {
                let index: usize = index.parse().map_err(|_| unknown())?;
                let p = next.llm.get_mut(index).ok_or_else(unknown)?;
                match *field {
                    "api" => {
                        p.api = match value.as_str() {
                            "openai" => ApiKind::OpenAi,
                            "anthropic" => ApiKind::Anthropic,
                            _ => {
                                return Err(Error::Settings(format!(
                                    "{key} is openai or anthropic, not {value:?}"
                                )));
                            }
                        }
                    }
                    "base_url" => p.base_url = value,
                    "model" => p.model = value,
                    "api_key" => p.api_key = value,
                    "max_tokens" => {
                        p.max_tokens = value.parse().map_err(|_| {
                            Error::Settings(format!("{key} is a whole number, not {value:?}"))
                        })?
                    }
                    _ => return Err(unknown()),
                }
            }
            _ => return Err(unknown()),
        }
        next.validate()?;
        Ok(next)
    }
}

impl OwnerSettings {
    fn change_wifi(&mut self, key: &str, change: &str, value: &str) -> Result<(), Error> {
        let unknown = || {
            Error::Settings(format!(
                "there is no setting {key:?}; the Wi-Fi settings are wifi.add, wifi.remove, \
                 wifi.N.ssid and wifi.N.passphrase"
            ))
        };
        let parts: Vec<&str> = change.split('.').collect();
        match parts.as_slice() {
            ["add"] => {
                let (ssid, passphrase) = match words(value)?.as_slice() {
                    [ssid] => (ssid.clone(), String::new()),
                    [ssid, passphrase] => (ssid.clone(), passphrase.clone()),
                    _ => {
                        return Err(Error::Settings(
                            "wifi.add takes the SSID and the passphrase, in double quotes when \
                             they have spaces: wifi.add \"My Home\" \"correct horse\" (the SSID \
                             alone for an open network)"
                                .into(),
                        ));
                    }
                };
                if let Some(index) = self.wifi.iter().position(|n| n.ssid == ssid) {
                    return Err(Error::Settings(format!(
                        "{ssid:?} is already wifi.{index}: change wifi.{index}.passphrase, or \
                         remove it first with wifi.remove"
                    )));
                }
                self.wifi.push(WifiNetwork { ssid, passphrase });
            }
            ["remove"] => {
                let ssid = one_value(value)?;
                let index = self
                    .wifi
                    .iter()
                    .position(|n| n.ssid == ssid)
                    .ok_or_else(|| {
                        Error::Settings(format!(
                            "there is no Wi-Fi network {ssid:?}; /settings lists them"
                        ))
                    })?;
                self.wifi.remove(index);
            }
            [index, field] => {
                let index: usize = index.parse().map_err(|_| unknown())?;
                let network = self.wifi.get_mut(index).ok_or_else(unknown)?;
                match *field {
                    "ssid" => network.ssid = one_value(value)?,
                    "passphrase" => network.passphrase = one_value(value)?,
                    _ => return Err(unknown()),
                }
            }
            _ => return Err(unknown()),
        }
        Ok(())
    }
}

/// A value in the chat's quoting: one word in double quotes (which keeps its spaces, and may
/// be empty) or the text as it is, trimmed.
fn one_value(value: &str) -> Result<String, Error> {
    let trimmed = value.trim();
    if trimmed.starts_with(is_quote) {
        match words(trimmed)?.as_slice() {
            [one] => return Ok(one.clone()),
            _ => {
                return Err(Error::Settings(
                    "give one value; put it in double quotes when it has spaces".into(),
                ));
            }
        }
    }
    Ok(trimmed.to_string())
}

/// Words separated by spaces; a word in double quotes keeps its spaces ("My Home"), and a
/// backslash inside quotes takes the next character as it is (\" \\). Phones that turn
/// quotes into “curly” ones are understood too. Errors never repeat the text: it may hold a
/// passphrase.
fn words(text: &str) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(first) = chars.next() else {
            return Ok(words);
        };
        let mut word = String::new();
        if is_quote(first) {
            loop {
                match chars.next() {
                    None => {
                        return Err(Error::Settings(
                            "a double quote is not closed; quote each value on its own, e.g. \
                             \"My Home\""
                                .into(),
                        ));
                    }
                    Some('\\') => word.extend(chars.next()),
                    Some(c) if is_quote(c) => break,
                    Some(c) => word.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(Error::Settings(
                    "put a space after each closing double quote".into(),
                ));
            }
        } else {
            word.push(first);
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '“' | '”')
}

/// Whether changing `key` changes a secret (its value is then never echoed or logged).
pub fn is_secret(key: &str) -> bool {
    key.ends_with("token")
        || key.ends_with("api_key")
        || key.ends_with("app_secret")
        || key.ends_with("passphrase")
        || key == "wifi.add"
}

fn masked(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if secret.chars().count() <= 8 {
        "…(set)".into()
    } else {
        format!("…{tail}")
    }
}

fn check_bot_name(bot: &str) -> Result<(), Error> {
    let ok = (5..=32).contains(&bot.len())
        && bot.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bot.to_ascii_lowercase().ends_with("bot");
    if ok {
        Ok(())
    } else {
        Err(Error::Settings(format!(
            "telegram.bot {bot:?} is not a bot user name (5 to 32 letters, digits or '_', ending in \"bot\"; without the @)"
        )))
    }
}

fn check_base_url(field: &str, url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(Error::Settings(format!(
            "{field} {url:?} is not a URL; give it in full, e.g. https://api.openai.com/v1"
        ))),
    }
}

impl std::fmt::Debug for OwnerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TelegramSettings {{ bot: {}, token: <secret> }}",
            self.bot
        )
    }
}

impl std::fmt::Debug for FeishuSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FeishuSettings {{ app_id: {}, app_secret: <secret> }}",
            self.app_id
        )
    }
}

impl std::fmt::Debug for LlmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LlmProvider {{ api: {:?}, base_url: {}, model: {}, api_key: <secret> }}",
            self.api, self.base_url, self.model
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
pairing_code = "AbCdEfGhIjKlMnOp"
[telegram]
bot = "my_carapace_bot"
token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
[[llm]]
api = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key = "sk-test-0123456789abcdef"
"#;

    #[test]
    fn a_good_file_parses_and_round_trips() {
        let settings = OwnerSettings::parse(GOOD).unwrap();
        assert_eq!(settings.llm[0].max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(settings.telegram.as_ref().unwrap().api_base, TELEGRAM_API);
        assert_eq!(OwnerSettings::parse(&settings.to_toml()).unwrap(), settings);
    }

    #[test]
    fn secrets_stay_out_of_summaries_and_debug() {
        let settings = OwnerSettings::parse(GOOD).unwrap();
        for shown in [settings.summary(), format!("{settings:?}")] {
            assert!(
                !shown.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
                "{shown}"
            );
            assert!(!shown.contains("sk-test-0123456789abcdef"), "{shown}");
            assert!(!shown.contains("AbCdEfGhIjKlMnOp"), "{shown}");
        }
        assert!(settings.summary().contains("llm.0.api_key = …cdef"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            ("", "no IM link"),
            (
                &GOOD.replace("my_carapace_bot", "@me"),
                "not a bot user name",
            ),
            (
                &GOOD.replace("123456789:", "x"),
                "does not look like a bot token",
            ),
            (
                &GOOD.replace("https://api.openai.com/v1", "api.openai.com"),
                "is not a URL",
            ),
            (&GOOD.replace("gpt-4o-mini", ""), "model is empty"),
            (&GOOD.replace("AbCdEfGhIjKlMnOp", "x"), "11 to 64"),
            (&GOOD.replace("model =", "modle ="), "unknown field"),
        ];
        for (text, expected) in cases {
            let error = OwnerSettings::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn one_field_changes_and_the_whole_is_checked() {
        let settings = OwnerSettings::parse(GOOD).unwrap();
        let next = settings.with("llm.0.model", "gpt-5").unwrap();
        assert_eq!(next.llm[0].model, "gpt-5");
        assert_eq!(settings.llm[0].model, "gpt-4o-mini");
        let error = settings.with("llm.0.base_url", "nowhere").unwrap_err();
        assert!(error.to_string().contains("is not a URL"), "{error}");
        let error = settings.with("llm.3.model", "x").unwrap_err();
        assert!(error.to_string().contains("no setting"), "{error}");
        assert!(is_secret("llm.0.api_key") && !is_secret("llm.0.model"));
        assert!(is_secret("wifi.add") && is_secret("wifi.1.passphrase"));
        assert!(!is_secret("wifi.remove") && !is_secret("wifi.0.ssid"));
    }

    const WIFI: &str = "\n[[wifi]]\nssid = \"My Home\"\npassphrase = \"correct horse\"\n\n\
                        [[wifi]]\nssid = \"cafe\"\npassphrase = \"\"\n";

    #[test]
    fn wifi_networks_parse_show_masked_and_round_trip() {
        let settings = OwnerSettings::parse(&format!("{GOOD}{WIFI}")).unwrap();
        assert_eq!(settings.wifi.len(), 2);
        assert!(settings.wifi[1].is_open());
        let summary = settings.summary();
        assert!(
            summary.contains("wifi.0.ssid = My Home\nwifi.0.passphrase = …(set)"),
            "{summary}"
        );
        assert!(
            summary.contains("wifi.1.passphrase = (none: an open network)"),
            "{summary}"
        );
        for shown in [summary, format!("{settings:?}")] {
            assert!(
                !shown.contains("correct horse") && !shown.contains("orse"),
                "{shown}"
            );
        }
        assert_eq!(OwnerSettings::parse(&settings.to_toml()).unwrap(), settings);
        // Without networks, nothing about Wi-Fi is written or shown.
        let plain = OwnerSettings::parse(GOOD).unwrap();
        assert!(!plain.to_toml().contains("wifi") && !plain.summary().contains("wifi"));
    }

    #[test]
    fn wifi_networks_that_netd_would_refuse_are_refused_here() {
        let cases = [
            (WIFI.replace("correct horse", "short"), "wifi.0.passphrase"),
            (WIFI.replace("My Home", ""), "wifi.0.ssid"),
            (WIFI.replace("My Home", &"x".repeat(33)), "wifi.0.ssid"),
            (WIFI.replace("cafe", "My Home"), "wifi.1.ssid"),
            (WIFI.replace("passphrase =", "psk ="), "unknown field"),
        ];
        for (wifi, expected) in cases {
            let error = OwnerSettings::parse(&format!("{GOOD}{wifi}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
            assert!(!error.contains("short\""), "{error}");
        }
    }

    #[test]
    fn wifi_networks_are_added_changed_and_removed_from_the_chat() {
        let settings = OwnerSettings::parse(GOOD).unwrap();
        let one = settings
            .with("wifi.add", "“My  Home” \"pass \\\"word\\\" 1 \"")
            .unwrap();
        assert_eq!(one.wifi[0].ssid, "My  Home");
        assert_eq!(one.wifi[0].passphrase, "pass \"word\" 1 ");
        let two = one.with("wifi.add", "cafe").unwrap();
        assert_eq!(two.wifi[1].ssid, "cafe");
        assert!(two.wifi[1].is_open());
        let three = two.with("wifi.add", "shop 12345678").unwrap();
        assert_eq!(three.wifi[2].passphrase, "12345678");
        let changed = three.with("wifi.1.passphrase", "\"now with one\"").unwrap();
        assert_eq!(changed.wifi[1].passphrase, "now with one");
        let renamed = changed.with("wifi.2.ssid", "The Shop").unwrap();
        assert_eq!(renamed.wifi[2].ssid, "The Shop");
        let removed = renamed.with("wifi.remove", "\"My  Home\"").unwrap();
        assert_eq!(removed.wifi.len(), 2);
        assert_eq!(removed.wifi[0].ssid, "cafe");
        let removed = removed.with("wifi.remove", "The Shop").unwrap();
        assert_eq!(removed.wifi.len(), 1);
        assert_eq!(settings.wifi.len(), 0, "the original is unchanged");
    }

    #[test]
    fn wifi_changes_that_do_not_check_say_why_without_the_passphrase() {
        let settings = OwnerSettings::parse(&format!("{GOOD}{WIFI}")).unwrap();
        let cases = [
            (
                "wifi.add",
                "home secret-one extra",
                "takes the SSID and the passphrase",
            ),
            ("wifi.add", "\"home secret-one", "not closed"),
            ("wifi.add", "\"home\"secret-one", "space after"),
            ("wifi.add", "cafe secret-one", "already wifi.1"),
            ("wifi.add", "home secret", "wifi.2.passphrase"),
            ("wifi.add", "", "takes the SSID"),
            ("wifi.remove", "nowhere", "no Wi-Fi network \"nowhere\""),
            ("wifi.0.passphrase", "secret", "wifi.0.passphrase"),
            ("wifi.5.ssid", "x", "no setting \"wifi.5.ssid\""),
            ("wifi.0.channel", "6", "no setting"),
            ("wifi.forget", "x", "wifi.add, wifi.remove"),
        ];
        for (key, value, expected) in cases {
            let error = settings.with(key, value).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{key} {value}: {expected:?} not in {error:?}"
            );
            assert!(!error.contains("secret"), "{key} {value}: {error}");
        }
    }
}
