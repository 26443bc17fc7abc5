//! The TPM client's one error type: what failed, and for a refusal the TPM's own response
//! code, which `Error::refusal` sorts into the cases a caller explains differently.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open the TPM at {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("talk to the TPM ({command}): {source}")]
    Io {
        command: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("the TPM refused {command}: {} (response code {code:#05x})", describe(*.code))]
    Refused { command: &'static str, code: u32 },

    #[error("the TPM's answer to {command} is malformed: {what}")]
    Malformed {
        command: &'static str,
        what: &'static str,
    },

    #[error("the sealed secret is malformed: {0}")]
    BadSealed(&'static str),

    #[error("the secret is {0} bytes; a sealed object holds 1 to 128")]
    SecretSize(usize),

    #[error("no random bytes for the session nonce: {0}")]
    Random(getrandom::Error),

    #[error("the TPM session's cryptography failed: {0}")]
    Crypto(&'static str),
}

/// Why a TPM said no, in the terms the owner is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// TPM_RC_INTEGRITY on load: the sealed object was made under another TPM's storage key
    /// (another machine, or this TPM was cleared).
    OtherTpm,
    /// TPM_RC_POLICY_FAIL on unseal: the PCRs differ from the values it was sealed against.
    PcrsChanged,
    /// TPM_RC_LOCKOUT: dictionary-attack lockout.
    Lockout,
    Other,
}

// Format-one codes (bit 7) carry the handle, session or parameter number in bits 6 and 8-11;
// the error itself is bits 0-5.
const FORMAT_ONE: u32 = 0x080;
const RC_INTEGRITY: u32 = FORMAT_ONE | 0x01F;
const RC_POLICY_FAIL: u32 = FORMAT_ONE | 0x01D;
const RC_LOCKOUT: u32 = 0x921;
pub(crate) const RC_RETRY: u32 = 0x922;
pub(crate) const RC_YIELDED: u32 = 0x908;
pub(crate) const RC_TESTING: u32 = 0x90A;

pub(crate) fn error_number(code: u32) -> u32 {
    if code & FORMAT_ONE != 0 {
        code & (FORMAT_ONE | 0x3F)
    } else {
        code
    }
}

fn describe(code: u32) -> &'static str {
    match error_number(code) {
        RC_INTEGRITY => "integrity check failed",
        RC_POLICY_FAIL => "policy check failed",
        RC_LOCKOUT => "in dictionary-attack lockout",
        0x100 => "not started (TPM2_Startup was not run)",
        0x101 => "in failure mode",
        0x128 => "PCRs changed during the policy session",
        n if n == FORMAT_ONE | 0x0B => "bad handle",
        n if n == FORMAT_ONE | 0x15 => "bad size",
        n if n == FORMAT_ONE | 0x04 => "bad value",
        _ => "see the TPM 2.0 specification, Part 2, TPM_RC",
    }
}

impl Error {
    pub fn refusal(&self) -> Option<Refusal> {
        let Error::Refused { code, .. } = self else {
            return None;
        };
        Some(match error_number(*code) {
            RC_INTEGRITY => Refusal::OtherTpm,
            RC_POLICY_FAIL => Refusal::PcrsChanged,
            RC_LOCKOUT => Refusal::Lockout,
            _ => Refusal::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_sorted_whatever_parameter_they_name() {
        let refused = |code| Error::Refused { command: "x", code };
        // Load's inPrivate (parameter 1) failing its integrity check on another TPM.
        assert_eq!(refused(0x1DF).refusal(), Some(Refusal::OtherTpm));
        // Unseal's policy session (session 1) whose PCR digest differs.
        assert_eq!(refused(0x99D).refusal(), Some(Refusal::PcrsChanged));
        assert_eq!(refused(0x921).refusal(), Some(Refusal::Lockout));
        assert_eq!(refused(0x101).refusal(), Some(Refusal::Other));
        assert!(
            refused(0x99D)
                .to_string()
                .contains("policy check failed (response code 0x99d)")
        );
    }
}
