//! Sealing a secret to this TPM under a PCR policy, and getting it back.
//!
//! The secret goes into a sealed data object under the storage root key (SRK) with no
//! password: only a policy session in which the given PCRs hold the values they held at
//! sealing time can unseal it. The object's private part is encrypted and integrity-protected
//! with a key derived from this TPM's storage seed, so it loads on no other TPM, nor on this
//! one once it is cleared. What is stored (`SealedSecret::to_bytes`) reveals nothing without
//! the TPM.

use crate::commands::Tpm;
use crate::error::Error;
use crate::transport::Transport;
use crate::wire::Reader;

/// The PCR that measures the Secure Boot state (UEFI: SecureBoot, PK, KEK, db, dbx and the db
/// entry that verified the boot loader), so a key sealed to it opens only while the firmware
/// boots with the same keys and Secure Boot on.
pub const PCR_SECURE_BOOT: u32 = 7;
/// TPM2B_SENSITIVE_DATA holds at most MAX_SYM_DATA bytes.
const MAX_SECRET: usize = 128;

/// The sealed object as the TPM returned it: TPM2B_PRIVATE then TPM2B_PUBLIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    private: Vec<u8>,
    public: Vec<u8>,
}

impl SealedSecret {
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.private.as_slice(), self.public.as_slice()].concat()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SealedSecret, Error> {
        let mut reader = Reader::new(bytes);
        let private = reader
            .sized_whole()
            .ok_or(Error::BadSealed("no private area"))?;
        let public = reader
            .sized_whole()
            .ok_or(Error::BadSealed("no public area"))?;
        if !reader.is_empty() {
            return Err(Error::BadSealed("bytes after the public area"));
        }
        Ok(SealedSecret {
            private: private.to_vec(),
            public: public.to_vec(),
        })
    }
}

/// Seals `secret` against the current values of `pcrs`.
pub fn seal<T: Transport>(
    tpm: &mut Tpm<T>,
    secret: &[u8],
    pcrs: &[u32],
) -> Result<SealedSecret, Error> {
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err(Error::SecretSize(secret.len()));
    }
    let trial = tpm.start_trial_session()?;
    tpm.policy_pcr(trial, pcrs)?;
    let policy = tpm.policy_digest(trial)?;
    tpm.flush(trial);
    let srk = tpm.create_primary_srk()?;
    let sealed = tpm
        .start_salted_session(srk.handle, &srk.point, false)
        .and_then(|mut session| tpm.create_sealed(&srk, secret, &policy, &mut session));
    tpm.flush(srk.handle);
    let (private, public) = sealed?;
    Ok(SealedSecret { private, public })
}

/// The secret, if this is the TPM that sealed it and `pcrs` hold what they held then.
/// `Error::refusal` says which of the two failed.
pub fn unseal<T: Transport>(
    tpm: &mut Tpm<T>,
    sealed: &SealedSecret,
    pcrs: &[u32],
) -> Result<Vec<u8>, Error> {
    let srk = tpm.create_primary_srk()?;
    let (item, name) = tpm.load(srk.handle, &sealed.private, &sealed.public)?;
    let session = tpm.start_salted_session(srk.handle, &srk.point, true);
    tpm.flush(srk.handle);
    let mut session = session?;
    tpm.policy_pcr(session.handle, pcrs)?;
    let secret = tpm.unseal(item, &name, &mut session);
    tpm.flush(item);
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_reads_back_and_rejects_trailing_or_missing_bytes() {
        let sealed = SealedSecret {
            private: vec![0, 2, 1, 2],
            public: vec![0, 1, 9],
        };
        let bytes = sealed.to_bytes();
        assert_eq!(SealedSecret::from_bytes(&bytes).expect("reads"), sealed);
        assert!(SealedSecret::from_bytes(&[bytes.as_slice(), &[0]].concat()).is_err());
        assert!(SealedSecret::from_bytes(&bytes[..5]).is_err());
        assert!(SealedSecret::from_bytes(&[]).is_err());
    }
}
