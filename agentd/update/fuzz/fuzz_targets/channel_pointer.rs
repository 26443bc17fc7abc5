//! Fuzzes the channel pointer parser and the signature file parser beside it: an error or a
//! pointer that survives a round trip, never a panic.
#![no_main]

use carapace_update::{ChannelPointer, DetachedSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pointer) = ChannelPointer::parse(bytes) {
        let again = ChannelPointer::parse(&pointer.to_json()).expect("a parsed pointer re-parses");
        assert_eq!(again, pointer);
        assert!(pointer.rollout_permille <= carapace_update::WHOLE_FLEET);
        assert!(pointer.manifest_signature().ends_with(".sig"));
    }
    if let Ok(signature) = DetachedSignature::parse(bytes, "fuzz") {
        let text = signature.to_file_text();
        assert_eq!(
            DetachedSignature::parse(text.as_bytes(), "fuzz").ok(),
            Some(signature)
        );
    }
});
