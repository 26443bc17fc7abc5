//! Fuzzes the stub's first look at a client's bytes (parse, then decide under a policy): a
//! decision, never a panic or a hang, and every immediate reply encodes.
#![no_main]

use carapace_netd::dns::{Decision, NamePolicy, decide};
use libfuzzer_sys::fuzz_target;

/// Allows names under `test`, so that fuzzed questions reach the Resolve branch too.
struct UnderTest;

impl NamePolicy for UnderTest {
    fn ports(&self, name: &str) -> Option<Vec<u16>> {
        name.ends_with(".test").then(|| vec![443, 80, 443])
    }
}

fuzz_target!(|bytes: &[u8]| {
    match decide(bytes, &UnderTest) {
        Decision::Drop(_) => {}
        Decision::Reply { message, .. } => {
            assert!(message.to_vec().is_ok(), "an immediate reply must encode");
        }
        Decision::Resolve(question) => {
            assert!(question.ports.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
});
