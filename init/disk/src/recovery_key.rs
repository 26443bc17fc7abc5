//! /data's recovery key: the owner's way back in when the TPM will not unseal /data's key (a
//! firmware update that changed the Secure Boot state, re-enrolled keys, a replaced
//! motherboard), instead of a factory reset that loses everything.
//!
//! A box that encrypts /data also puts a second key in LUKS2 key slot 1: 25 random characters
//! of Crockford's base 32 (125 bits), shown as five groups of five. The helper hands it to the
//! owner's service through /run (owner_settings.rs moves it into that service's state
//! directory once /data is mounted), and agentd shows it to the owner on `/recovery_key`; it
//! is never written in the clear anywhere else.
//!
//! A locked box opens with it when the owner puts it on the ESP as `carapace-recovery-key.txt`
//! (like the factory-reset file): the helper opens slot 1 with it, seals a new key to this
//! TPM and Secure Boot state in place of slot 0's (so later boots need no file), then deletes
//! the file. A power cut half-way leaves the file, and the next boot finishes.

use std::path::Path;

use crate::error::Error;

/// The file the owner puts in the ESP's root to open a locked /data.
pub const ESP_FILE: &str = "carapace-recovery-key.txt";
/// Where the helper leaves a new recovery key for the owner's service (tmpfs: gone at the
/// next boot if nothing moved it).
pub const HANDED_OVER: &str = "/run/carapace/data-recovery-key";
/// The LUKS2 key slot that opens with the recovery key (slot 0 opens with the sealed key).
pub const KEY_SLOT: &str = "1";
/// Crockford's base 32: no I, L, O or U, so nothing reads as another character.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const GROUPS: usize = 5;
const GROUP_LEN: usize = 5;
const LEN: usize = GROUPS * GROUP_LEN;
/// A file on the ESP longer than this is not a recovery key.
const MAX_FILE_BYTES: usize = 256;

/// The key's 25 characters, without separators: what LUKS2 key slot 1 opens with.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey(String);

impl RecoveryKey {
    pub fn generate() -> Result<RecoveryKey, Error> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        // 256 is a multiple of 32, so the low five bits of a random byte are uniform.
        let text = bytes
            .iter()
            .filter_map(|byte| ALPHABET.get(usize::from(byte & 31)).copied())
            .map(char::from)
            .collect();
        Ok(RecoveryKey(text))
    }

    /// The key as the owner may type it: any case, with or without dashes and spaces, O for
    /// 0 and I or L for 1. `None` when it is not 25 of the alphabet's characters.
    pub fn parse(text: &str) -> Option<RecoveryKey> {
        let mut key = String::with_capacity(LEN);
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return None;
            }
            key.push(c);
        }
        (key.len() == LEN).then_some(RecoveryKey(key))
    }

    pub fn secret(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Five groups of five, joined by dashes.
    pub fn display(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars
            .chunks(GROUP_LEN)
            .map(|group| group.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Leaves the key for the owner's service, 0600 (root's until it is moved).
    pub fn hand_over(&self) -> Result<(), Error> {
        let path = Path::new(HANDED_OVER);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let text = format!("{}\n", self.display());
        board_support::atomic_file::write(path, text.as_bytes(), 0o600)
            .map_err(|e| Error::io("write", path, e))
    }
}

/// The key in the file the owner put on the ESP: `Ok(None)` when there is no such file,
/// an error saying what is wrong with one that holds no key.
pub fn from_esp(esp: &Path) -> Result<Option<RecoveryKey>, Error> {
    let path = esp.join(ESP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io("read", &path, error)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let key = (bytes.len() <= MAX_FILE_BYTES)
        .then(|| RecoveryKey::parse(&text))
        .flatten();
    match key {
        Some(key) => Ok(Some(key)),
        None => Err(Error::Locked {
            why: format!(
                "{ESP_FILE} on the ESP holds no recovery key (25 letters and digits in five \
                 groups of five, as /recovery_key showed them)"
            ),
        }),
    }
}

impl std::fmt::Debug for RecoveryKey {
    /// Never the key itself: it opens /data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_25_characters_of_the_alphabet_shown_in_five_groups() {
        let key = RecoveryKey::generate().expect("random");
        assert_eq!(key.secret().len(), 25);
        assert!(key.secret().iter().all(|c| ALPHABET.contains(c)));
        let shown = key.display();
        assert_eq!(shown.len(), 29);
        assert_eq!(shown.split('-').count(), 5);
        assert_eq!(RecoveryKey::parse(&shown), Some(key.clone()));
        assert_ne!(RecoveryKey::generate().expect("random"), key);
        assert_eq!(format!("{key:?}"), "RecoveryKey(..)");
    }

    #[test]
    fn the_owner_may_type_it_loosely_but_not_wrongly() {
        let key = RecoveryKey::parse("ABCDE-FGH01-23456-789JK-MNPQR").expect("key");
        for typed in [
            "abcde-fgh01-23456-789jk-mnpqr\n",
            "ABCDE FGH01 23456 789JK MNPQR",
            "ABCDEFGHOI23456789JKMNPQR",
            "ABCDE-FGH0L-23456-789JK-MNPQR",
        ] {
            assert_eq!(RecoveryKey::parse(typed).as_ref(), Some(&key), "{typed:?}");
        }
        for wrong in [
            "",
            "ABCDE-FGH01-23456-789JK-MNPQ",
            "ABCDE-FGH01-23456-789JK-MNPQRS",
            "ABCDE-FGH01-23456-789JK-MNPQU",
            "ABCDE-FGH01-23456-789JK-MNPQÄ",
        ] {
            assert_eq!(RecoveryKey::parse(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn the_esp_file_is_read_and_a_bad_one_says_what_a_key_looks_like() {
        let esp = tempfile::tempdir().expect("tempdir");
        assert_eq!(from_esp(esp.path()).expect("no file"), None);
        std::fs::write(
            esp.path().join(ESP_FILE),
            "abcde-fgh01-23456-789jk-mnpqr\r\n",
        )
        .unwrap();
        assert_eq!(
            from_esp(esp.path()).expect("a key"),
            RecoveryKey::parse("ABCDEFGH0123456789JKMNPQR")
        );
        std::fs::write(esp.path().join(ESP_FILE), "my password").unwrap();
        let error = from_esp(esp.path()).unwrap_err().to_string();
        assert!(error.contains("holds no recovery key"), "{error}");
        std::fs::write(esp.path().join(ESP_FILE), "A".repeat(1000)).unwrap();
        assert!(from_esp(esp.path()).is_err());
    }
}
