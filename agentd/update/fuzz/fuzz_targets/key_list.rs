//! Fuzzes the key list parser (keys.json comes from the update server before anything it
//! signs is checked): an error or a list that keeps its rules through a round trip.
#![no_main]

use carapace_update::SignedKeyList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(list) = SignedKeyList::parse(bytes) {
        let again = SignedKeyList::parse(list.to_file_text().as_bytes())
            .expect("a parsed key list re-parses");
        assert_eq!(again, list);
        assert!(list.unverified().validate().is_ok());
    }
});
