//! Fuzzes the manifest parser, which the box runs on bytes from the update server once their
//! signature verified (and the publisher runs on any bundle): an error or a manifest that
//! keeps its own rules through a round trip, never a panic or a hang.
#![no_main]

use carapace_update::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(manifest) = Manifest::parse(bytes) {
        let again = Manifest::parse(&manifest.to_json()).expect("a parsed manifest re-parses");
        assert_eq!(again, manifest);
        // Every file's chunks cover it exactly.
        for artifact in manifest.artifacts() {
            let covered: u64 = artifact.chunks.iter().map(|c| u64::from(c.length)).sum();
            assert_eq!(covered, artifact.size);
        }
    }
});
