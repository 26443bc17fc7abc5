#![no_main]
//! Whatever a TPM (or something posing as one) sends back, the reader returns an error or
//! fields within the bytes it was given; and a stored sealed blob read from disk likewise.

use carapace_tpm::SealedSecret;
use carapace_tpm::wire::response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let handles = data.first().map_or(0, |b| usize::from(b % 3));
    if let Ok(mut r) = response("fuzz", data, handles) {
        let _ = (r.params.sized_whole(), r.params.sized(), r.params.u32());
        let _ = (r.sessions.sized(), r.sessions.take(1), r.sessions.remaining());
    }
    let _ = SealedSecret::from_bytes(data);
});
