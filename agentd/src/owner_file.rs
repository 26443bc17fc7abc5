//! The owner-settings file PID 1 moved from the boot partition into agentd's state directory
//! (`owner-settings.toml`). It is honoured only while the box is unpaired: its settings become
//! the current and last good ones, its pairing code the owner's code. A paired box deletes it
//! unread (later changes come only through the owner's chat). A file that does not check is
//! kept aside, private, with the reason on the console, so nothing the owner wrote is lost.
//! Its Wi-Fi networks are netd's to join: the import leaves a note in the store
//! ([`FIRST_BOOT_PENDING`]) that agentd hands them to netd, which it does (and clears the
//! note) once netd listens, so a restart in between loses nothing.

use std::path::Path;

use board_support::OWNER_SETTINGS_FILE;
use carapace_owner::{OwnerSettings, PairingCode};

use crate::error::Error;
use crate::netd_control::FIRST_BOOT_PENDING;
use crate::pairing;
use crate::store::{Role, Store};

/// Where a file that did not check is kept.
pub const REJECTED_FILE: &str = "owner-settings.rejected.toml";

#[derive(Debug, PartialEq)]
pub enum Import {
    /// No file.
    Nothing,
    Imported,
    /// The box is paired: deleted unread.
    IgnoredPaired,
    /// Kept as [`REJECTED_FILE`]; the reason says what to fix.
    Rejected(String),
}

pub fn import(state_dir: &Path, store: &Store, now: u64) -> Result<Import, Error> {
    let path = state_dir.join(OWNER_SETTINGS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Import::Nothing),
        Err(source) => {
            return Err(Error::File {
                what: format!("reading {}", path.display()),
                source,
            });
        }
    };
    let remove = |path: &Path| {
        std::fs::remove_file(path)
            .and_then(|()| board_support::atomic_file::sync_dir(state_dir))
            .map_err(|source| Error::File {
                what: format!("deleting {}", path.display()),
                source,
            })
    };
    if store.has_owner()? {
        remove(&path)?;
        return Ok(Import::IgnoredPaired);
    }
    let mut settings = match OwnerSettings::parse(&text) {
        Ok(settings) => settings,
        Err(error) => {
            let aside = state_dir.join(REJECTED_FILE);
            std::fs::rename(&path, &aside).map_err(|source| Error::File {
                what: format!("moving {} aside", path.display()),
                source,
            })?;
            return Ok(Import::Rejected(error.to_string()));
        }
    };
    if let Some(code) = settings.pairing_code.take() {
        let code = PairingCode::parse(&code)?;
        store.remove_codes()?;
        pairing::store_code(store, &code, Role::Owner, now)?;
        store.put_setting(pairing::OWNER_CODE, Some(code.as_str()))?;
    }
    let toml = settings.to_toml();
    store.set_settings(&toml, Some(&toml))?;
    if !settings.wifi.is_empty() {
        store.put_setting(FIRST_BOOT_PENDING, Some("first-boot file"))?;
    }
    remove(&path)?;
    Ok(Import::Imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::User;
    use carapace_im::ChannelKind;

    const FILE: &str = r#"
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
    fn an_unpaired_box_imports_and_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(OWNER_SETTINGS_FILE), FILE).unwrap();
        assert_eq!(import(dir.path(), &store, 5).unwrap(), Import::Imported);
        assert!(!dir.path().join(OWNER_SETTINGS_FILE).exists());
        let current = store.settings("current").unwrap().unwrap();
        assert!(current.contains("gpt-4o-mini") && !current.contains("AbCdEfGhIjKlMnOp"));
        assert_eq!(store.settings("last_good").unwrap().unwrap(), current);
        let codes = store.codes().unwrap();
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].0, pairing::code_key("AbCdEfGhIjKlMnOp"));
        // No networks: nothing for netd.
        assert_eq!(store.settings(FIRST_BOOT_PENDING).unwrap(), None);
    }

    #[test]
    fn wifi_networks_are_imported_and_noted_for_netd() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let file = format!("{FILE}\n[[wifi]]\nssid = \"home\"\npassphrase = \"home-secret\"\n");
        std::fs::write(dir.path().join(OWNER_SETTINGS_FILE), file).unwrap();
        assert_eq!(import(dir.path(), &store, 5).unwrap(), Import::Imported);
        let current = OwnerSettings::parse(&store.settings("current").unwrap().unwrap()).unwrap();
        assert_eq!(current.wifi[0].ssid, "home");
        assert!(store.settings(FIRST_BOOT_PENDING).unwrap().is_some());
    }

    #[test]
    fn a_paired_box_deletes_it_unread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_user(&User {
                channel: ChannelKind::Telegram,
                id: "42".into(),
                name: "Ann".into(),
                role: Role::Owner,
                since: 1,
            })
            .unwrap();
        std::fs::write(dir.path().join(OWNER_SETTINGS_FILE), FILE).unwrap();
        assert_eq!(
            import(dir.path(), &store, 5).unwrap(),
            Import::IgnoredPaired
        );
        assert!(!dir.path().join(OWNER_SETTINGS_FILE).exists());
        assert!(store.settings("current").unwrap().is_none());
    }

    #[test]
    fn a_bad_file_is_kept_aside_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(
            dir.path().join(OWNER_SETTINGS_FILE),
            "[telegram]\nbot = 1\n",
        )
        .unwrap();
        let Import::Rejected(reason) = import(dir.path(), &store, 5).unwrap() else {
            panic!("not rejected");
        };
        assert!(reason.contains("bot"), "{reason}");
        assert!(dir.path().join(REJECTED_FILE).exists());
        assert!(store.settings("current").unwrap().is_none());
    }
}
