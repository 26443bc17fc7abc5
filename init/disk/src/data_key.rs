//! /data's key: 256 random bits, sealed by the box's TPM against the Secure Boot state
//! (PCR 7), and kept sealed in the LUKS2 header's token 0. The disk alone gives nothing away:
//! the token opens only on the TPM that sealed it, while the firmware measures the same Secure
//! Boot state; the key itself is never written anywhere.
//!
//! ```text
//! token 0: {"type":"carapace-tpm2","keyslots":["0"],"pcr_bank":"sha256","pcrs":[7],
//!           "srk":"ecc-p256","sealed":"<TPM2B_PRIVATE || TPM2B_PUBLIC, hex>"}
//! ```

use std::path::Path;

use carapace_tpm::{DEVICE, Device, PCR_SECURE_BOOT, Refusal, SealedSecret, Tpm};
use serde_json::{Value, json};

use crate::error::Error;

const TOKEN_TYPE: &str = "carapace-tpm2";
const KEY_BYTES: usize = 32;

/// The box's TPM, if it has one.
pub fn open_tpm() -> Result<Option<Tpm<Device>>, Error> {
    Ok(Device::open(Path::new(DEVICE))?.map(Tpm::new))
}

/// A new key (as the hex text cryptsetup is given) and the token that holds it sealed.
pub fn create(tpm: &mut Tpm<Device>) -> Result<(Vec<u8>, String), Error> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    let key = hex::encode(bytes).into_bytes();
    let sealed = carapace_tpm::seal(tpm, &key, &[PCR_SECURE_BOOT])?;
    let token = json!({
        "type": TOKEN_TYPE,
        "keyslots": ["0"],
        "pcr_bank": "sha256",
        "pcrs": [PCR_SECURE_BOOT],
        "srk": "ecc-p256",
        "sealed": hex::encode(sealed.to_bytes()),
    });
    Ok((key, token.to_string()))
}

/// The key, from the token cryptsetup exported, or why this box cannot have it.
pub fn recover(tpm: Option<&mut Tpm<Device>>, token: &str) -> Result<Vec<u8>, Error> {
    let locked = |why: String| Error::Locked { why };
    let token: Value = serde_json::from_str(token)
        .map_err(|e| locked(format!("its LUKS2 token 0 is not JSON ({e})")))?;
    let kind = token
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    if kind != TOKEN_TYPE {
        return Err(locked(format!(
            "its LUKS2 token 0 is of type {kind}, not {TOKEN_TYPE}"
        )));
    }
    let sealed = token
        .get("sealed")
        .and_then(Value::as_str)
        .and_then(|text| hex::decode(text).ok())
        .ok_or_else(|| locked("its token holds no sealed key".to_owned()))?;
    let sealed = SealedSecret::from_bytes(&sealed)?;
    let Some(tpm) = tpm else {
        return Err(locked(
            "this machine has no TPM 2.0 (the one that sealed /data's key is not here)".to_owned(),
        ));
    };
    carapace_tpm::unseal(tpm, &sealed, &[PCR_SECURE_BOOT]).map_err(|err| {
        let why = match err.refusal() {
            Some(Refusal::OtherTpm) => {
                "this is not the TPM that sealed /data's key (the disk is in another machine, \
                 or the TPM was cleared)"
            }
            Some(Refusal::PcrsChanged) => {
                "the Secure Boot state (PCR 7) differs from when /data's key was sealed \
                 (Secure Boot turned off, or other keys enrolled); boot with the Secure Boot \
                 settings it was sealed under"
            }
            Some(Refusal::Lockout) => "the TPM is in dictionary-attack lockout",
            _ => return Error::Tpm(err),
        };
        locked(format!("{why} [{err}]"))
    })
}
