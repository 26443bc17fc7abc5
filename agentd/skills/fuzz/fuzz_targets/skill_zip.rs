//! Fuzzes the unpacker of a skill's zip (archive.rs), which agentd runs on whatever the owner's
//! chat delivers: an error, or a skill folder inside the staging folder, never a panic, a hang
//! or a file outside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let root = tempfile::tempdir().expect("a temporary folder");
    let staging = root.path().join("staging");
    std::fs::create_dir(&staging).expect("the staging folder");
    let unpacked = carapace_skills::archive::unpack(bytes, &staging);
    for entry in std::fs::read_dir(root.path()).expect("the temporary folder") {
        assert_eq!(entry.expect("an entry").path(), staging, "written beside staging");
    }
    if let Ok(name) = unpacked {
        assert!(staging.join(name).join("SKILL.md").is_file());
    }
});
