//! Fuzzes what the update service reads of a downloaded UKI before it writes anything (its
//! sections and certificate table) and the firmware's db as efivarfs hands it over: an answer
//! or nothing, never a panic, a hang or a huge allocation.
#![no_main]

use board_support::{secure_boot_db, uki};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = uki::section(bytes, ".cmdline");
    let _ = uki::section(bytes, ".linux");
    let certificates = secure_boot_db::x509_certificates(bytes);
    let _ = uki::carries_certificate(bytes, &certificates);
});
