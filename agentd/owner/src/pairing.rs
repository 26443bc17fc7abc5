//! The one-time pairing code: 96 random bits as 16 base64url characters, which fit Telegram's
//! 64-character `start` payload (`[A-Za-z0-9_-]`) with room to spare and can be typed into a
//! Feishu chat by hand.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

const RANDOM_BYTES: usize = 12;
/// Codes made elsewhere (an older CLI) are accepted from this length up: 64 bits.
const MIN_LEN: usize = 11;
const MAX_LEN: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode(String);

impl PairingCode {
    pub fn generate() -> Result<PairingCode, Error> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| Error::Entropy(error.to_string()))?;
        Ok(PairingCode(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn parse(text: &str) -> Result<PairingCode, Error> {
        let bad = |reason: &str| Error::PairingCode {
            code: text.into(),
            reason: reason.into(),
        };
        if !(MIN_LEN..=MAX_LEN).contains(&text.len()) {
            return Err(bad("a pairing code has 11 to 64 characters"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("a pairing code has only letters, digits, '-' and '_'"));
        }
        Ok(PairingCode(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Telegram's deep link: opening it starts a chat with the bot and sends `/start <code>`.
    pub fn telegram_link(&self, bot: &str) -> String {
        format!("https://t.me/{bot}?start={}", self.0)
    }

    /// Constant-time comparison, so timing says nothing about how much of a guess was right.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingCode(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_fit_the_start_payload() {
        let code = PairingCode::generate().unwrap();
        assert_eq!(code.as_str().len(), 16);
        assert!(PairingCode::parse(code.as_str()).is_ok());
        assert_ne!(code, PairingCode::generate().unwrap());
        assert_eq!(
            code.telegram_link("box_bot"),
            format!("https://t.me/box_bot?start={}", code.as_str())
        );
    }

    #[test]
    fn bad_codes_say_why() {
        let error = PairingCode::parse("short").unwrap_err();
        assert!(error.to_string().contains("11 to 64"), "{error}");
        let error = PairingCode::parse("has spaces in it!").unwrap_err();
        assert!(error.to_string().contains("only letters"), "{error}");
    }

    #[test]
    fn matching_is_exact() {
        let code = PairingCode::parse("abcdefghijklmnop").unwrap();
        assert!(code.matches("abcdefghijklmnop"));
        assert!(!code.matches("abcdefghijklmnoq"));
        assert!(!code.matches("abcdefghijklmno"));
    }
}
