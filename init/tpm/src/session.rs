//! The salted policy session that unseals /data's key (TCG TPM 2.0 Library, Part 1, 19 and
//! 21), so the key never crosses the bus to a discrete TPM in the clear:
//!
//! ```text
//! caller                                          TPM
//!   ephemeral P-256 key e, Q = eG
//!   salt = KDFe(x(e·SRK), "SECRET", Q.x, SRK.x)
//!   StartAuthSession(SRK, Q, nonceCaller) ───────▶ salt = KDFe(x(srk·Q), ...)
//!                                          ◀─────── nonceTPM
//!   sessionKey = KDFa(salt, "ATH", nonceTPM, nonceCaller)   (both sides; never sent)
//!   PolicyPCR(session, PCR 7)
//!   Unseal(item), attributes "encrypt", HMAC ────▶ checks the HMAC, unseals, and sends
//!                                          ◀─────── data XOR KDFa(sessionKey, "XOR", ...), HMAC
//!   checks the response HMAC, removes the mask
//! ```
//! Someone reading the bus sees Q and the masked data; without e or the SRK's private key
//! (which never leaves the TPM) there is no salt, so no session key. Parameter encryption is
//! the TPM's XOR scheme: the mask is KDFa (HMAC-SHA256 in counter mode) over fresh nonces,
//! used once. What it does not stop: a device that poses as the TPM from the start (an active
//! interposer could answer CreatePrimary with its own key). Sealing (the first boot, and after
//! a recovery) masks the key on its way in, in a salted HMAC session, the same way.

use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::rand::SystemRandom;

use crate::error::Error;

/// TPMA_SESSION bits: the command's first parameter is encrypted; the answer's is.
pub const SESSION_DECRYPT: u8 = 0x20;
pub const SESSION_ENCRYPT: u8 = 0x40;

/// An ECC public point as the TPM gives it (TPMS_ECC_POINT: big-endian x and y).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccPoint {
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// A salt made for the SRK `srk`: the point to send (the encrypted salt) and the salt itself.
pub fn make_salt(srk: &EccPoint) -> Result<(EccPoint, Vec<u8>), Error> {
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| Error::Crypto("no ephemeral P-256 key could be made"))?;
    let public = private
        .compute_public_key()
        .map_err(|_| Error::Crypto("the ephemeral P-256 public key"))?;
    // Uncompressed SEC1: 0x04, x, y.
    let public = public.as_ref();
    let ours = EccPoint {
        x: public.get(1..33).unwrap_or_default().to_vec(),
        y: public.get(33..65).unwrap_or_default().to_vec(),
    };
    let peer = [&[4u8][..], &srk.x, &srk.y].concat();
    let peer = UnparsedPublicKey::new(&ECDH_P256, peer);
    // ring gives the shared point's x coordinate, which is Z.
    let salt = agree_ephemeral(private, &peer, |z| kdfe(z, b"SECRET", &ours.x, &srk.x, 256))
        .map_err(|_| Error::Crypto("the SRK's public point is not on P-256"))?;
    Ok((ours, salt))
}

/// KDFa (SP 800-108 counter mode with HMAC-SHA256), as TPM 2.0 defines it: `bits` of
/// HMAC(key, i || label || 0 || context_u || context_v || bits), i = 1, 2, ...
pub fn kdfa(key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let want = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(want + 32);
    let mut counter: u32 = 1;
    while out.len() < want {
        let mut context = hmac::Context::with_key(&key);
        context.update(&counter.to_be_bytes());
        context.update(label);
        context.update(&[0]);
        context.update(context_u);
        context.update(context_v);
        context.update(&bits.to_be_bytes());
        out.extend_from_slice(context.sign().as_ref());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// KDFe (SP 800-56A's one-step KDF with SHA-256), as TPM 2.0 defines it for ECDH salts:
/// SHA-256(i || z || label || 0 || party_u || party_v), i = 1, 2, ...
pub fn kdfe(z: &[u8], label: &[u8], party_u: &[u8], party_v: &[u8], bits: u32) -> Vec<u8> {
    let want = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(want + 32);
    let mut counter: u32 = 1;
    while out.len() < want {
        let input = [&counter.to_be_bytes()[..], z, label, &[0], party_u, party_v].concat();
        out.extend_from_slice(digest(&SHA256, &input).as_ref());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// A started salted session: its handle, the key both sides derived, and the TPM's last nonce.
pub struct SaltedSession {
    pub handle: u32,
    pub key: Vec<u8>,
    pub nonce_tpm: Vec<u8>,
}

impl SaltedSession {
    pub fn new(handle: u32, salt: &[u8], nonce_tpm: Vec<u8>, nonce_caller: &[u8]) -> Self {
        SaltedSession {
            handle,
            key: kdfa(salt, b"ATH", &nonce_tpm, nonce_caller, 256),
            nonce_tpm,
        }
    }

    /// The command's authorization HMAC: over cpHash = SHA-256(command code || the names of
    /// its handles || its parameters), the nonces (newer first) and the session attributes.
    pub fn command_hmac(
        &self,
        code: u32,
        names: &[&[u8]],
        params: &[u8],
        nonce_caller: &[u8],
        attributes: u8,
    ) -> Vec<u8> {
        let mut cp = code.to_be_bytes().to_vec();
        for name in names {
            cp.extend_from_slice(name);
        }
        cp.extend_from_slice(params);
        let cp_hash = digest(&SHA256, &cp);
        self.sign(&[
            cp_hash.as_ref(),
            nonce_caller,
            &self.nonce_tpm,
            &[attributes],
        ])
    }

    /// Checks the response's HMAC (over rpHash = SHA-256(0 || command code || the response's
    /// parameters as sent), then the TPM's new nonce, the caller's, and the attributes), and
    /// takes the new nonce.
    pub fn check_response(
        &mut self,
        code: u32,
        params: &[u8],
        nonce_tpm: &[u8],
        nonce_caller: &[u8],
        attributes: u8,
        mac: &[u8],
    ) -> Result<(), Error> {
        let rp = [&0u32.to_be_bytes()[..], &code.to_be_bytes(), params].concat();
        let rp_hash = digest(&SHA256, &rp);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let message = [rp_hash.as_ref(), nonce_tpm, nonce_caller, &[attributes]].concat();
        hmac::verify(&key, &message, mac).map_err(|_| {
            Error::Crypto(
                "the TPM's answer does not carry the session's HMAC (changed on the way, or not \
                 from the TPM the session was started with)",
            )
        })?;
        self.nonce_tpm = nonce_tpm.to_vec();
        Ok(())
    }

    /// Removes the XOR mask from a response parameter the TPM encrypted: the mask is
    /// KDFa(sessionKey, "XOR", nonceTPM, nonceCaller) as long as the data.
    pub fn unmask_response(&self, data: &[u8], nonce_caller: &[u8]) -> Vec<u8> {
        self.xor(data, &self.nonce_tpm, nonce_caller)
    }

    /// Masks a command's first parameter (its bytes after the size) for the TPM to remove:
    /// KDFa(sessionKey, "XOR", nonceCaller, nonceTPM), the newer nonce first.
    pub fn mask_command(&self, data: &[u8], nonce_caller: &[u8]) -> Vec<u8> {
        self.xor(data, nonce_caller, &self.nonce_tpm)
    }

    fn xor(&self, data: &[u8], newer: &[u8], older: &[u8]) -> Vec<u8> {
        let bits = u32::try_from(data.len() * 8).unwrap_or(u32::MAX);
        let mask = kdfa(&self.key, b"XOR", newer, older, bits);
        data.iter().zip(mask).map(|(byte, m)| byte ^ m).collect()
    }

    fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        hmac::sign(&key, &parts.concat()).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KDFa is SP 800-108's counter-mode KDF: its first block is one plain HMAC of the
    /// framed input, and longer outputs continue the counter.
    #[test]
    fn kdfa_frames_its_input_as_the_tpm_does() {
        let framed = [
            &1u32.to_be_bytes()[..],
            b"ATH",
            &[0],
            b"uu",
            b"vv",
            &256u32.to_be_bytes(),
        ]
        .concat();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        let expected = hmac::sign(&key, &framed);
        assert_eq!(kdfa(b"key", b"ATH", b"uu", b"vv", 256), expected.as_ref());
        let long = kdfa(b"key", b"XOR", b"u", b"v", 400);
        assert_eq!(long.len(), 50);
        assert_ne!(long[..32], kdfa(b"key", b"XOR", b"u", b"v", 256)[..]);
        assert_eq!(kdfa(b"key", b"XOR", b"u", b"v", 24).len(), 3);
    }

    #[test]
    fn kdfe_is_one_hash_per_block() {
        let input = [&1u32.to_be_bytes()[..], b"z", b"SECRET", &[0], b"u", b"v"].concat();
        assert_eq!(
            kdfe(b"z", b"SECRET", b"u", b"v", 256),
            digest(&SHA256, &input).as_ref()
        );
    }

    #[test]
    fn a_salt_needs_a_point_on_the_curve() {
        let off_curve = EccPoint {
            x: vec![1; 32],
            y: vec![2; 32],
        };
        assert!(make_salt(&off_curve).is_err());
    }
}
