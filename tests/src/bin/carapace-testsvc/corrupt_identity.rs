//! `corrupt-identity`: when the test asks for it, overwrites agentd's identity file with bytes
//! that are not a key (as agentd's uid, after agentd said READY=1), so the boots after it
//! crash-loop agentd: the fault PID 1 must end in a degraded boot, not in resets for ever.

use crate::test_request;

const IDENTITY: &str = "/data/agentd/identity.key";

pub fn run() {
    if !test_request::asks_for("corrupt-identity") {
        println!("corrupt-identity idle");
        return;
    }
    match std::fs::write(IDENTITY, b"not an ed25519 key") {
        Ok(()) => println!("corrupt-identity done path={IDENTITY}"),
        Err(err) => println!("corrupt-identity error={err}"),
    }
}
