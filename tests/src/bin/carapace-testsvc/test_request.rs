//! The hook a whole-system test passes in through QEMU's fw_cfg (`carapace.test`), so a
//! mode that would disturb other tests (stop petting, flood the console) acts only when asked.

const TEST_REQUEST: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/carapace.test/raw";

/// Whether the test asked for `what`.
pub fn asks_for(what: &str) -> bool {
    std::fs::read_to_string(TEST_REQUEST).is_ok_and(|request| matches(&request, what))
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
