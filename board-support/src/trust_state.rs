//! What the chain of trust verified on this boot and how /data is kept: the disk helper writes
//! it once, before any service starts, on tmpfs; agentd reads it for `/status`.
//!
//! ```text
//! secure-boot=on lockdown=integrity tpm=yes data=encrypted
//! ```

use std::fmt;

pub const TRUST_STATE: &str = "/run/carapace/trust";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustState {
    /// on, off, unknown, or no-uefi.
    pub secure_boot: String,
    /// The kernel's lockdown level (none, integrity, confidentiality) or unknown.
    pub lockdown: String,
    /// A TPM 2.0 answered on /dev/tpmrm0.
    pub tpm: bool,
    pub data: DataProtection,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataProtection {
    /// LUKS2, its key sealed to this box's TPM against the Secure Boot state.
    Encrypted,
    /// Plain ext4: the box has no TPM to seal a key to.
    PlainNoTpm,
    /// Plain ext4: the box has a TPM, but its image was built without cryptsetup (its recipe
    /// leaves /data encryption out, as on a board whose kernel's dm-crypt is not checked yet).
    PlainImageWithout,
    /// Plain ext4 made before the box encrypted /data (or while it had no TPM); a factory
    /// reset makes it encrypted.
    PlainFromBefore,
    /// Encrypted, and this boot could not unseal its key.
    Locked,
    /// /data was not prepared (not found, or the helper failed first).
    Unknown,
}

const WORDS: [(DataProtection, &str); 6] = [
    (DataProtection::Encrypted, "encrypted"),
    (DataProtection::PlainNoTpm, "plain-no-tpm"),
    (
        DataProtection::PlainImageWithout,
        "plain-image-without-encryption",
    ),
    (DataProtection::PlainFromBefore, "plain-from-before"),
    (DataProtection::Locked, "locked"),
    (DataProtection::Unknown, "unknown"),
];

impl DataProtection {
    pub fn word(self) -> &'static str {
        WORDS
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("unknown", |(_, w)| w)
    }

    /// One line for the owner: what a stolen disk reveals.
    pub fn describe(self) -> &'static str {
        match self {
            DataProtection::Encrypted => {
                "encrypted (LUKS2); its key is sealed to this box's TPM against the Secure Boot \
                 state, so the disk alone opens nothing"
            }
            DataProtection::PlainNoTpm => {
                "not encrypted: this box has no TPM 2.0, so a stolen disk reveals /data (the \
                 device key, the owner's IM and LLM secrets, the agent's memory)"
            }
            DataProtection::PlainImageWithout => {
                "not encrypted: this box has a TPM, but its image was built without /data \
                 encryption (no cryptsetup in its recipe)"
            }
            DataProtection::PlainFromBefore => {
                "not encrypted: it was made before this box encrypted /data; a factory reset \
                 makes a new, encrypted /data"
            }
            DataProtection::Locked => "encrypted, and this boot could not unseal its key",
            DataProtection::Unknown => "not known: /data was not prepared on this boot",
        }
    }
}

impl fmt::Display for TrustState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secure-boot={} lockdown={} tpm={} data={}",
            self.secure_boot,
            self.lockdown,
            crate::data_outcome::yes_no(self.tpm),
            self.data.word()
        )
    }
}

impl TrustState {
    /// `None` for anything but what `Display` writes.
    pub fn parse(text: &str) -> Option<TrustState> {
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        };
        let tpm = match field("tpm")? {
            "yes" => true,
            "no" => false,
            _ => return None,
        };
        let data = field("data")?;
        Some(TrustState {
            secure_boot: field("secure-boot")?.to_owned(),
            lockdown: field("lockdown")?.to_owned(),
            tpm,
            data: WORDS.iter().find(|(_, w)| *w == data)?.0,
        })
    }

    /// The file agentd reads, or `None` on a box whose disk helper wrote none.
    pub fn read() -> Option<TrustState> {
        TrustState::parse(&std::fs::read_to_string(TRUST_STATE).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_written() {
        for (data, _) in WORDS {
            let state = TrustState {
                secure_boot: "on".into(),
                lockdown: "integrity".into(),
                tpm: data == DataProtection::Encrypted,
                data,
            };
            assert_eq!(TrustState::parse(&state.to_string()), Some(state));
        }
        assert_eq!(
            TrustState::parse("secure-boot=on lockdown=none tpm=maybe data=encrypted"),
            None
        );
        assert_eq!(TrustState::parse("secure-boot=on"), None);
    }
}
