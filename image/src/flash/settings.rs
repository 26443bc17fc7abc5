//! The owner's settings as `carapace flash` takes them: a settings file (the format of
//! carapace_owner::settings), flags, or both, the flags taking precedence. Secrets come from
//! files, never from the command line, where `ps` and the shell's history would keep them.

use std::path::{Path, PathBuf};

use board_support::wifi::WifiNetwork;
use carapace_owner::settings::TELEGRAM_API;
use carapace_owner::{ApiKind, LlmProvider, OwnerSettings, PairingCode, TelegramSettings};

/// The flags; each group is all or nothing.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct OwnerFlags {
    /// The owner's settings file (as for build --owner-settings); the flags below take
    /// precedence over it.
    #[arg(long = "settings", value_name = "FILE")]
    pub settings_file: Option<PathBuf>,
    /// A Wi-Fi network for the box to join first.
    #[arg(long, value_name = "SSID")]
    pub wifi: Option<String>,
    /// A file holding its passphrase (none: an open network).
    #[arg(long, value_name = "FILE")]
    pub wifi_passphrase_file: Option<PathBuf>,
    /// The Telegram bot the box is (its user name, from @BotFather).
    #[arg(long, value_name = "NAME")]
    pub telegram_bot: Option<String>,
    /// A file holding the bot's token.
    #[arg(long, value_name = "FILE")]
    pub telegram_token_file: Option<PathBuf>,
    /// The LLM API's base URL (https://api.openai.com/v1, https://api.anthropic.com, ...).
    #[arg(long, value_name = "URL")]
    pub llm_endpoint: Option<String>,
    /// The API it speaks: openai (the default) or anthropic.
    #[arg(long, value_name = "API")]
    pub llm_api: Option<String>,
    #[arg(long, value_name = "MODEL")]
    pub llm_model: Option<String>,
    /// A file holding the API key.
    #[arg(long, value_name = "FILE")]
    pub llm_key_file: Option<PathBuf>,
}

impl OwnerFlags {
    pub fn any(&self) -> bool {
        self.settings_file.is_some()
            || self.wifi.is_some()
            || self.wifi_passphrase_file.is_some()
            || self.telegram_bot.is_some()
            || self.telegram_token_file.is_some()
            || self.llm_endpoint.is_some()
            || self.llm_api.is_some()
            || self.llm_model.is_some()
            || self.llm_key_file.is_some()
    }
}

/// The settings the flags describe, checked whole and with a pairing code; None without any.
pub fn compose(flags: &OwnerFlags) -> Result<Option<OwnerSettings>, String> {
    if !flags.any() {
        return Ok(None);
    }
    let mut settings = match &flags.settings_file {
        // Checked whole only at the end: the flags may supply what the file leaves out.
        Some(path) => toml::from_str::<OwnerSettings>(&read(path, "the settings file")?)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => OwnerSettings::default(),
    };
    match (&flags.telegram_bot, &flags.telegram_token_file) {
        (Some(bot), Some(token)) => {
            settings.telegram = Some(TelegramSettings {
                bot: bot.trim_start_matches('@').to_string(),
                token: read_secret(token, "the bot token")?,
                api_base: TELEGRAM_API.into(),
            })
        }
        (None, None) => {}
        _ => {
            return Err(
                "--telegram-bot and --telegram-token-file go together: the bot's user \
                        name and a file holding the token @BotFather gave"
                    .into(),
            );
        }
    }
    if flags.llm_endpoint.is_some()
        || flags.llm_model.is_some()
        || flags.llm_key_file.is_some()
        || flags.llm_api.is_some()
    {
        let (Some(endpoint), Some(model), Some(key)) =
            (&flags.llm_endpoint, &flags.llm_model, &flags.llm_key_file)
        else {
            return Err(
                "--llm-endpoint, --llm-model and --llm-key-file go together (and \
                        --llm-api when the endpoint speaks Anthropic's API)"
                    .into(),
            );
        };
        let api = match flags.llm_api.as_deref().unwrap_or("openai") {
            "openai" => ApiKind::OpenAi,
            "anthropic" => ApiKind::Anthropic,
            other => return Err(format!("--llm-api is openai or anthropic, not {other:?}")),
        };
        // The flag's provider is tried first; the file's stay as fallbacks.
        settings.llm.insert(
            0,
            LlmProvider {
                api,
                base_url: endpoint.trim_end_matches('/').to_string(),
                model: model.clone(),
                api_key: read_secret(key, "the LLM key")?,
                max_tokens: 1024,
            },
        );
    }
    match (&flags.wifi, &flags.wifi_passphrase_file) {
        (Some(ssid), passphrase) => {
            let passphrase = match passphrase {
                Some(path) => read_secret(path, "the Wi-Fi passphrase")?,
                None => String::new(),
            };
            settings.wifi.retain(|network| &network.ssid != ssid);
            settings.wifi.insert(
                0,
                WifiNetwork {
                    ssid: ssid.clone(),
                    passphrase,
                },
            );
        }
        (None, Some(_)) => return Err("--wifi-passphrase-file needs --wifi SSID".into()),
        (None, None) => {}
    }
    settings.validate().map_err(|e| e.to_string())?;
    let code = match &settings.pairing_code {
        Some(code) => PairingCode::parse(code),
        None => PairingCode::generate(),
    }
    .map_err(|e| e.to_string())?;
    settings.pairing_code = Some(code.as_str().to_string());
    Ok(Some(settings))
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} from {}: {e}", path.display()))
}

/// A secret file's text without its line ending; an empty one is an error.
fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let text = read(path, what)?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(format!("{} is empty; put {what} in it", path.display()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn flags(dir: &Path) -> OwnerFlags {
        OwnerFlags {
            telegram_bot: Some("@kitchen_box_bot".into()),
            telegram_token_file: Some(secret(
                dir,
                "token",
                "123456:AAEhBP0av28-not-a-real-token\n",
            )),
            llm_endpoint: Some("https://llm.example/v1/".into()),
            llm_model: Some("gpt-4o-mini".into()),
            llm_key_file: Some(secret(dir, "key", "sk-key\n")),
            ..OwnerFlags::default()
        }
    }

    #[test]
    fn no_flags_no_settings() {
        assert_eq!(compose(&OwnerFlags::default()).unwrap(), None);
    }

    #[test]
    fn flags_alone_make_whole_settings_with_a_pairing_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = flags(dir.path());
        flags.wifi = Some("My Home".into());
        flags.wifi_passphrase_file = Some(secret(dir.path(), "wifi", "correct horse battery\n"));
        let settings = compose(&flags).unwrap().unwrap();
        let telegram = settings.telegram.as_ref().unwrap();
        assert_eq!(telegram.bot, "kitchen_box_bot");
        assert_eq!(telegram.token, "123456:AAEhBP0av28-not-a-real-token");
        assert_eq!(settings.llm[0].base_url, "https://llm.example/v1");
        assert_eq!(settings.llm[0].api, ApiKind::OpenAi);
        assert_eq!(settings.llm[0].api_key, "sk-key");
        assert_eq!(settings.wifi[0].ssid, "My Home");
        assert_eq!(settings.wifi[0].passphrase, "correct horse battery");
        assert!(PairingCode::parse(settings.pairing_code.as_deref().unwrap()).is_ok());
    }

    #[test]
    fn flags_come_before_the_files_providers_and_networks() {
        let dir = tempfile::tempdir().unwrap();
        let file = secret(
            dir.path(),
            "owner.toml",
            "pairing_code = \"AbCdEfGhIjKlMnOp\"\n\
             [[llm]]\napi = \"anthropic\"\nbase_url = \"https://other.example\"\n\
             model = \"claude\"\napi_key = \"a\"\n\
             [[wifi]]\nssid = \"Office\"\npassphrase = \"long enough pass\"\n",
        );
        let mut flags = flags(dir.path());
        flags.settings_file = Some(file);
        flags.wifi = Some("Cafe".into());
        let settings = compose(&flags).unwrap().unwrap();
        let models: Vec<&str> = settings.llm.iter().map(|p| p.model.as_str()).collect();
        assert_eq!(models, ["gpt-4o-mini", "claude"]);
        let ssids: Vec<&str> = settings.wifi.iter().map(|w| w.ssid.as_str()).collect();
        assert_eq!(ssids, ["Cafe", "Office"]);
        assert_eq!(settings.wifi[0].passphrase, "");
        assert_eq!(settings.pairing_code.as_deref(), Some("AbCdEfGhIjKlMnOp"));
    }

    #[test]
    fn half_a_group_or_an_incomplete_whole_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let mut only_bot = flags(dir.path());
        only_bot.telegram_token_file = None;
        let why = compose(&only_bot).unwrap_err();
        assert!(
            why.starts_with("--telegram-bot and --telegram-token-file go together"),
            "{why}"
        );

        let mut no_llm = flags(dir.path());
        no_llm.llm_endpoint = None;
        no_llm.llm_model = None;
        no_llm.llm_key_file = None;
        let why = compose(&no_llm).unwrap_err();
        assert!(why.starts_with("owner settings: no LLM provider"), "{why}");

        let mut empty_key = flags(dir.path());
        empty_key.llm_key_file = Some(secret(dir.path(), "empty", "\n"));
        let why = compose(&empty_key).unwrap_err();
        assert!(
            why.ends_with("empty is empty; put the LLM key in it"),
            "{why}"
        );

        let mut bad_api = flags(dir.path());
        bad_api.llm_api = Some("gemini".into());
        let why = compose(&bad_api).unwrap_err();
        assert_eq!(why, "--llm-api is openai or anthropic, not \"gemini\"");
    }
}
