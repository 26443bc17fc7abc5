//! Fuzzes netd's configuration parser, which reads a file the owner writes: a configuration
//! or an error, never a panic. What parses must also write and read back to the same value,
//! and merge with itself without losing allowlist entries.
#![no_main]

use carapace_netpolicy::NetdConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = NetdConfig::parse(text) else {
        return;
    };
    let written = config.to_toml().expect("a parsed configuration writes");
    let reread = NetdConfig::parse(&written).expect("what we write parses");
    assert_eq!(reread, config, "the round trip changed the configuration");
    let merged = NetdConfig::merged(&config, &config);
    assert!(config.allow.iter().all(|entry| merged.allow.contains(entry)));
});
