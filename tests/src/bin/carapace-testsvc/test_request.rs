//! The hook a whole-system test passes in through QEMU's fw_cfg (`carapace.test`), so a
//! mode that would disturb other tests (stop petting, flood the console) acts only when asked.

const TEST_REQUEST: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/carapace.test/raw";

/// Whether the test asked for `what`. A request that is there but cannot be read (a mode
/// whose service lacks CAP_DAC_READ_SEARCH: the file is root's, 0400) is said on stderr, so
/// the mode does not just stay silent.
pub fn asks_for(what: &str) -> bool {
    match std::fs::read_to_string(TEST_REQUEST) {
        Ok(request) => matches(&request, what),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(error) => {
            eprintln!("{what}: cannot read the test request {TEST_REQUEST}: {error}");
            false
        }
    }
}

/// A file the test passed in through fw_cfg as `opt/<name>`.
pub fn file(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/firmware/qemu_fw_cfg/by_name/opt/{name}/raw")).ok()
}

fn matches(request: &str, what: &str) -> bool {
    request.trim() == what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_word_give_or_take_whitespace() {
        assert!(matches("stop-petting\n", "stop-petting"));
        assert!(matches("  chatty", "chatty"));
        assert!(!matches("stop", "stop-petting"));
        assert!(!matches("", "chatty"));
    }
}
