//! The one line a probe prints: `ok`, or `error <kind>: <message>` with the io::Error's kind
//! (PermissionDenied for EPERM from a dropped datagram, TimedOut for a dropped SYN).

use std::io;

pub fn report(outcome: io::Result<()>) {
    match outcome {
        Ok(()) => println!("ok"),
        Err(err) => println!("error {:?}: {err}", err.kind()),
    }
}
