//! agentd's self-test at start, which a trial boot of a new slot waits on before it is
//! committed: the store takes a write and reads it back, and the device key signs and
//! verifies. What it cannot test (the model, the IM link) the update service judges from the
//! link state instead.

use ed25519_dalek::{Signer, Verifier};

use crate::store::Store;

/// The store's settings row the self-test writes.
const PROBE: &str = "self_test_probe";

/// "passed" (board_support::update_control::SELF_TEST_PASSED), or what failed.
pub fn run(store: &Store, signing_key: &ed25519_dalek::SigningKey, now: u64) -> String {
    match check(store, signing_key, now) {
        Ok(()) => board_support::update_control::SELF_TEST_PASSED.to_owned(),
        Err(problem) => problem,
    }
}

fn check(store: &Store, signing_key: &ed25519_dalek::SigningKey, now: u64) -> Result<(), String> {
    let written = now.to_string();
    store
        .put_setting(PROBE, Some(&written))
        .map_err(|err| format!("the store refused a write: {err}"))?;
    match store.settings(PROBE) {
        Ok(Some(read)) if read == written => {}
        Ok(other) => {
            return Err(format!(
                "the store read back {other:?}, not what was written"
            ));
        }
        Err(err) => return Err(format!("the store refused a read: {err}")),
    }
    let message = format!("carapace self-test {now}");
    let signature = signing_key.sign(message.as_bytes());
    signing_key
        .verifying_key()
        .verify(message.as_bytes(), &signature)
        .map_err(|err| format!("the device key does not verify its own signature: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_store_and_key_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        assert_eq!(run(&store, &key, 1_800_000_000), "passed");
        assert_eq!(run(&store, &key, 1_800_000_001), "passed");
    }
}
