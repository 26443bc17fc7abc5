//! The few TPM 2.0 commands sealing needs (TCG TPM 2.0 Library, Part 3), each a function over
//! a transport. Handles the TPM creates here are transient: `Tpm` flushes them when it drops,
//! for a TPM without a resource manager (swtpm's socket) as much as for /dev/tpmrm0.

use crate::error::{Error, RC_RETRY, RC_TESTING, RC_YIELDED, error_number};
use crate::session::{self, EccPoint, SESSION_DECRYPT, SESSION_ENCRYPT, SaltedSession};
use crate::transport::Transport;
use crate::wire::{self, Auth, Reader};

const CC_CREATE_PRIMARY: u32 = 0x131;
const CC_CREATE: u32 = 0x153;
const CC_LOAD: u32 = 0x157;
const CC_UNSEAL: u32 = 0x15E;
const CC_FLUSH_CONTEXT: u32 = 0x165;
const CC_START_AUTH_SESSION: u32 = 0x176;
const CC_PCR_READ: u32 = 0x17E;
const CC_POLICY_PCR: u32 = 0x17F;
const CC_PCR_EXTEND: u32 = 0x182;
const CC_POLICY_GET_DIGEST: u32 = 0x189;

const RH_OWNER: u32 = 0x4000_0001;
const RH_NULL: u32 = 0x4000_0007;
pub const ALG_SHA256: u16 = 0x000B;
const ALG_NULL: u16 = 0x0010;
const ALG_AES: u16 = 0x0006;
const ALG_CFB: u16 = 0x0043;
const ALG_XOR: u16 = 0x000A;
const ALG_ECC: u16 = 0x0023;
const ALG_KEYEDHASH: u16 = 0x0008;
const ECC_NIST_P256: u16 = 0x0003;
const SE_HMAC: u8 = 0x00;
const SE_POLICY: u8 = 0x01;
const SE_TRIAL: u8 = 0x03;

// TPMA_OBJECT bits.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
const USER_WITH_AUTH: u32 = 1 << 6;
const NO_DA: u32 = 1 << 10;
const RESTRICTED: u32 = 1 << 16;
const DECRYPT: u32 = 1 << 17;

const RETRIES: u32 = 20;

/// The storage root key, loaded: its handle, its public point (which salts sessions) and its
/// name (which HMACs over commands on it cover).
pub struct Srk {
    pub handle: u32,
    pub point: EccPoint,
    pub name: Vec<u8>,
}

pub struct Tpm<T: Transport> {
    io: T,
    /// Transient objects and sessions to flush on drop.
    loaded: Vec<u32>,
}

impl<T: Transport> Tpm<T> {
    pub fn new(io: T) -> Tpm<T> {
        Tpm {
            io,
            loaded: Vec::new(),
        }
    }

    /// Sends one command, again while the TPM says it is busy, and returns the response.
    fn call(&mut self, name: &'static str, command: &[u8]) -> Result<Vec<u8>, Error> {
        for _ in 0..RETRIES {
            let response = self.io.transact(command).map_err(|source| Error::Io {
                command: name,
                source,
            })?;
            let code = response.get(6..10).and_then(|b| b.try_into().ok());
            match code.map(u32::from_be_bytes).map(error_number) {
                Some(RC_RETRY | RC_YIELDED | RC_TESTING) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => return Ok(response),
            }
        }
        Err(Error::Refused {
            command: name,
            code: RC_RETRY,
        })
    }

    /// The storage root key: the TCG's standard ECC P-256 SRK template, so the same TPM
    /// derives the same key from its storage seed on every boot, and another TPM another.
    pub fn create_primary_srk(&mut self) -> Result<Srk, Error> {
        let mut params = Vec::new();
        wire::put_sized(&mut params, &[0, 0, 0, 0]); // no userAuth, no data
        let mut public = Vec::new();
        public.extend_from_slice(&ALG_ECC.to_be_bytes());
        public.extend_from_slice(&ALG_SHA256.to_be_bytes());
        let attributes = FIXED_TPM
            | FIXED_PARENT
            | SENSITIVE_DATA_ORIGIN
            | USER_WITH_AUTH
            | NO_DA
            | RESTRICTED
            | DECRYPT;
        public.extend_from_slice(&attributes.to_be_bytes());
        wire::put_sized(&mut public, &[]); // no policy
        for field in [ALG_AES, 128, ALG_CFB, ALG_NULL, ECC_NIST_P256, ALG_NULL] {
            public.extend_from_slice(&field.to_be_bytes());
        }
        public.extend_from_slice(&[0, 0, 0, 0]); // unique: empty x and y
        wire::put_sized(&mut params, &public);
        params.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // no outsideInfo, no creation PCRs
        let command = wire::command(CC_CREATE_PRIMARY, &[RH_OWNER], &[Auth::Password], &params);
        let bytes = self.call("CreatePrimary", &command)?;
        let mut response = wire::response("CreatePrimary", &bytes, 1)?;
        let handle = handle_of(&response, "CreatePrimary")?;
        self.loaded.push(handle);
        let malformed = |what| Error::Malformed {
            command: "CreatePrimary",
            what,
        };
        let point = srk_point(&mut response.params).ok_or(malformed("no ECC public point"))?;
        // creationData, creationHash, creationTicket (tag, hierarchy, digest), then the name.
        let name = (|| {
            let params = &mut response.params;
            params.sized()?;
            params.sized()?;
            params.take(6)?;
            params.sized()?;
            params.sized()
        })()
        .ok_or(malformed("no name"))?;
        Ok(Srk {
            handle,
            point,
            name: name.to_vec(),
        })
    }

    /// A session salted with the SRK's public point (session.rs): a policy session, whose
    /// answers the TPM encrypts, or an HMAC session that only encrypts a command's parameter.
    pub fn start_salted_session(
        &mut self,
        srk: u32,
        point: &EccPoint,
        policy: bool,
    ) -> Result<SaltedSession, Error> {
        let (ours, salt) = session::make_salt(point)?;
        let nonce_caller = random_nonce()?;
        let mut params = Vec::new();
        wire::put_sized(&mut params, &nonce_caller);
        let mut encrypted_salt = Vec::new();
        wire::put_sized(&mut encrypted_salt, &ours.x);
        wire::put_sized(&mut encrypted_salt, &ours.y);
        wire::put_sized(&mut params, &encrypted_salt);
        params.push(if policy { SE_POLICY } else { SE_HMAC });
        params.extend_from_slice(&ALG_XOR.to_be_bytes());
        params.extend_from_slice(&ALG_SHA256.to_be_bytes()); // the XOR mask's hash
        params.extend_from_slice(&ALG_SHA256.to_be_bytes()); // the session's hash
        let command = wire::command(CC_START_AUTH_SESSION, &[srk, RH_NULL], &[], &params);
        let bytes = self.call("StartAuthSession", &command)?;
        let mut response = wire::response("StartAuthSession", &bytes, 1)?;
        let handle = handle_of(&response, "StartAuthSession")?;
        self.loaded.push(handle);
        let nonce_tpm = sized(&mut response.params, "StartAuthSession")?.to_vec();
        Ok(SaltedSession::new(handle, &salt, nonce_tpm, &nonce_caller))
    }

    /// A trial session, which only computes a policy's digest (nothing secret passes: no salt).
    pub fn start_trial_session(&mut self) -> Result<u32, Error> {
        let mut params = Vec::new();
        wire::put_sized(&mut params, &random_nonce()?);
        wire::put_sized(&mut params, &[]); // no salt
        params.push(SE_TRIAL);
        params.extend_from_slice(&ALG_NULL.to_be_bytes()); // no parameter encryption
        params.extend_from_slice(&ALG_SHA256.to_be_bytes());
        let command = wire::command(CC_START_AUTH_SESSION, &[RH_NULL, RH_NULL], &[], &params);
        let bytes = self.call("StartAuthSession", &command)?;
        let handle = one_handle("StartAuthSession", &bytes)?;
        self.loaded.push(handle);
        Ok(handle)
    }

    /// Adds "these PCRs hold their current values" to the session's policy.
    pub fn policy_pcr(&mut self, session: u32, pcrs: &[u32]) -> Result<(), Error> {
        let mut params = Vec::new();
        wire::put_sized(&mut params, &[]); // the TPM reads the PCRs itself
        params.extend_from_slice(&pcr_selection(pcrs));
        let command = wire::command(CC_POLICY_PCR, &[session], &[], &params);
        let bytes = self.call("PolicyPCR", &command)?;
        wire::response("PolicyPCR", &bytes, 0).map(drop)
    }

    pub fn policy_digest(&mut self, session: u32) -> Result<Vec<u8>, Error> {
        let command = wire::command(CC_POLICY_GET_DIGEST, &[session], &[], &[]);
        let bytes = self.call("PolicyGetDigest", &command)?;
        let mut response = wire::response("PolicyGetDigest", &bytes, 0)?;
        sized(&mut response.params, "PolicyGetDigest").map(<[u8]>::to_vec)
    }

    /// A sealed data object under `parent` holding `secret`, usable only through `policy`.
    /// The secret goes masked with `session`'s key (an HMAC session salted with the SRK's
    /// point), which the TPM removes. Returns the object's TPM2B_PRIVATE and TPM2B_PUBLIC,
    /// each with its size prefix.
    pub fn create_sealed(
        &mut self,
        parent: &Srk,
        secret: &[u8],
        policy: &[u8],
        session: &mut SaltedSession,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let nonce_caller = random_nonce()?;
        let mut sensitive = Vec::new();
        wire::put_sized(&mut sensitive, &[]); // no userAuth: only the policy opens it
        wire::put_sized(&mut sensitive, secret);
        let mut params = Vec::new();
        wire::put_sized(
            &mut params,
            &session.mask_command(&sensitive, &nonce_caller),
        );
        let mut public = Vec::new();
        public.extend_from_slice(&ALG_KEYEDHASH.to_be_bytes());
        public.extend_from_slice(&ALG_SHA256.to_be_bytes());
        public.extend_from_slice(&(FIXED_TPM | FIXED_PARENT | NO_DA).to_be_bytes());
        wire::put_sized(&mut public, policy);
        public.extend_from_slice(&ALG_NULL.to_be_bytes()); // keyed-hash scheme: none (sealed)
        wire::put_sized(&mut public, &[]); // unique
        wire::put_sized(&mut params, &public);
        params.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let attributes = SESSION_DECRYPT;
        let hmac = session.command_hmac(
            CC_CREATE,
            &[&parent.name],
            &params,
            &nonce_caller,
            attributes,
        );
        let auths = [
            Auth::Password,
            Auth::Session {
                session: session.handle,
                nonce: &nonce_caller,
                attributes,
                hmac: &hmac,
            },
        ];
        let command = wire::command(CC_CREATE, &[parent.handle], &auths, &params);
        self.loaded.retain(|&h| h != session.handle);
        let bytes = self.call("Create", &command)?;
        let mut response = wire::response("Create", &bytes, 0)?;
        // The password session's answer (no nonce, attributes, no HMAC), then the salted one's.
        let answered = (|| {
            let sessions = &mut response.sessions;
            sessions.sized()?;
            sessions.take(1)?;
            sessions.sized()?;
            let nonce_tpm = sessions.sized()?;
            let returned = sessions.take(1)?.first().copied()?;
            Some((nonce_tpm, returned, sessions.sized()?))
        })();
        let (nonce_tpm, returned, mac) = answered.ok_or(Error::Malformed {
            command: "Create",
            what: "no answer for the salted session",
        })?;
        let params_sent = response.params.remaining();
        session.check_response(
            CC_CREATE,
            params_sent,
            nonce_tpm,
            &nonce_caller,
            returned,
            mac,
        )?;
        let malformed = Error::Malformed {
            command: "Create",
            what: "no private or public area",
        };
        let private = response.params.sized_whole().ok_or(malformed)?.to_vec();
        let public = response.params.sized_whole().ok_or(Error::Malformed {
            command: "Create",
            what: "no public area",
        })?;
        Ok((private, public.to_vec()))
    }

    /// Loads an object under `parent`; returns its handle and its name (which HMACs cover).
    pub fn load(
        &mut self,
        parent: u32,
        private: &[u8],
        public: &[u8],
    ) -> Result<(u32, Vec<u8>), Error> {
        let params = [private, public].concat();
        let command = wire::command(CC_LOAD, &[parent], &[Auth::Password], &params);
        let bytes = self.call("Load", &command)?;
        let mut response = wire::response("Load", &bytes, 1)?;
        let handle = handle_of(&response, "Load")?;
        self.loaded.push(handle);
        let name = sized(&mut response.params, "Load")?.to_vec();
        Ok((handle, name))
    }

    /// The sealed data, if the policy session satisfies the object's policy: the TPM sends it
    /// masked, with an HMAC this checks before removing the mask. The session ends with the
    /// command either way.
    pub fn unseal(
        &mut self,
        item: u32,
        item_name: &[u8],
        session: &mut SaltedSession,
    ) -> Result<Vec<u8>, Error> {
        let nonce_caller = random_nonce()?;
        let attributes = SESSION_ENCRYPT;
        let hmac = session.command_hmac(CC_UNSEAL, &[item_name], &[], &nonce_caller, attributes);
        let auth = Auth::Session {
            session: session.handle,
            nonce: &nonce_caller,
            attributes,
            hmac: &hmac,
        };
        let command = wire::command(CC_UNSEAL, &[item], &[auth], &[]);
        self.loaded.retain(|&h| h != session.handle);
        let bytes = self.call("Unseal", &command)?;
        let mut response = wire::response("Unseal", &bytes, 0)?;
        let params = response.params.remaining();
        let masked = sized(&mut response.params, "Unseal")?;
        let malformed = |what| Error::Malformed {
            command: "Unseal",
            what,
        };
        let nonce_tpm = response
            .sessions
            .sized()
            .ok_or(malformed("no session nonce"))?;
        let returned = response
            .sessions
            .take(1)
            .and_then(|b| b.first().copied())
            .ok_or(malformed("no session attributes"))?;
        let mac = response
            .sessions
            .sized()
            .ok_or(malformed("no session HMAC"))?;
        session.check_response(CC_UNSEAL, params, nonce_tpm, &nonce_caller, returned, mac)?;
        if returned & SESSION_ENCRYPT == 0 {
            return Err(malformed("the data came back unencrypted"));
        }
        Ok(session.unmask_response(masked, &nonce_caller))
    }

    /// PCR `index`'s SHA-256 value.
    pub fn pcr_read(&mut self, index: u32) -> Result<Vec<u8>, Error> {
        let command = wire::command(CC_PCR_READ, &[], &[], &pcr_selection(&[index]));
        let bytes = self.call("PCR_Read", &command)?;
        let mut response = wire::response("PCR_Read", &bytes, 0)?;
        let malformed = |what| Error::Malformed {
            command: "PCR_Read",
            what,
        };
        response
            .params
            .u32()
            .ok_or(malformed("no update counter"))?;
        let selections = response.params.u32().ok_or(malformed("no selection"))?;
        for _ in 0..selections {
            response.params.u16().ok_or(malformed("selection"))?;
            let len = response.params.take(1).ok_or(malformed("selection"))?;
            response
                .params
                .take(usize::from(len.first().copied().unwrap_or(0)))
                .ok_or(malformed("selection"))?;
        }
        if response.params.u32() != Some(1) {
            return Err(malformed("the PCR was not returned"));
        }
        sized(&mut response.params, "PCR_Read").map(<[u8]>::to_vec)
    }

    /// Extends PCR `index`'s SHA-256 bank with `digest` (what firmware does as it measures).
    pub fn pcr_extend(&mut self, index: u32, digest: &[u8; 32]) -> Result<(), Error> {
        let mut params = Vec::new();
        params.extend_from_slice(&1u32.to_be_bytes());
        params.extend_from_slice(&ALG_SHA256.to_be_bytes());
        params.extend_from_slice(digest);
        let command = wire::command(CC_PCR_EXTEND, &[index], &[Auth::Password], &params);
        let bytes = self.call("PCR_Extend", &command)?;
        wire::response("PCR_Extend", &bytes, 0).map(drop)
    }

    pub fn flush(&mut self, handle: u32) {
        self.loaded.retain(|&h| h != handle);
        let command = wire::command(CC_FLUSH_CONTEXT, &[], &[], &handle.to_be_bytes());
        // A handle the TPM already dropped is not worth an error.
        let _ = self.call("FlushContext", &command);
    }
}

impl<T: Transport> Drop for Tpm<T> {
    fn drop(&mut self) {
        for handle in std::mem::take(&mut self.loaded) {
            self.flush(handle);
        }
    }
}

/// TPML_PCR_SELECTION: one SHA-256 bank, PCRs 0-23 as three bytes of bits.
pub fn pcr_selection(pcrs: &[u32]) -> Vec<u8> {
    let mut select = [0u8; 3];
    for &pcr in pcrs {
        if let Some(byte) = select.get_mut((pcr / 8) as usize) {
            *byte |= 1 << (pcr % 8);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&ALG_SHA256.to_be_bytes());
    out.push(3);
    out.extend_from_slice(&select);
    out
}

/// The public point in CreatePrimary's outPublic (a TPMT_PUBLIC of the SRK template: type,
/// name algorithm, attributes, policy, the ECC parameters, then x and y).
fn srk_point(params: &mut Reader<'_>) -> Option<EccPoint> {
    let mut public = Reader::new(params.sized()?);
    public.take(8)?; // type, nameAlg, objectAttributes
    public.sized()?; // authPolicy
    public.take(12)?; // symmetric (3), scheme, curveID, kdf
    let x = public.sized()?.to_vec();
    let y = public.sized()?.to_vec();
    Some(EccPoint { x, y })
}

fn one_handle(command: &'static str, bytes: &[u8]) -> Result<u32, Error> {
    handle_of(&wire::response(command, bytes, 1)?, command)
}

fn handle_of(response: &wire::Response<'_>, command: &'static str) -> Result<u32, Error> {
    response.handles.first().copied().ok_or(Error::Malformed {
        command,
        what: "no handle",
    })
}

fn sized<'a>(params: &mut Reader<'a>, command: &'static str) -> Result<&'a [u8], Error> {
    params.sized().ok_or(Error::Malformed {
        command,
        what: "parameter cut short",
    })
}

fn random_nonce() -> Result<[u8; 32], Error> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(Error::Random)?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_7_is_the_top_bit_of_the_first_byte() {
        assert_eq!(pcr_selection(&[7]), [0, 0, 0, 1, 0, 0x0B, 3, 0x80, 0, 0]);
        assert_eq!(
            pcr_selection(&[0, 23]),
            [0, 0, 0, 1, 0, 0x0B, 3, 1, 0, 0x80]
        );
        assert_eq!(pcr_selection(&[99])[7..], [0, 0, 0]);
    }
}
