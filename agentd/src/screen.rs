//! The box's screen (the HDMI console, tty1, which PID 1 hands to agentd): the pairing link
//! and QR code while the box is unpaired, cleared once it is paired. A box with no screen, or
//! run by hand, just has no tty to open; nothing here is an error worth more than a line.

use std::io::Write;

pub const TTY: &str = "/dev/tty1";
/// Clear the screen and put the cursor top left (the Linux console's VT100 codes).
const CLEAR: &str = "\x1b[2J\x1b[H";

/// Replaces what the screen shows with `text`.
pub fn show(text: &str) {
    let opened = std::fs::OpenOptions::new().write(true).open(TTY);
    if let Ok(mut tty) = opened
        && let Err(error) = tty.write_all(format!("{CLEAR}{text}\n").as_bytes())
    {
        eprintln!("screen: writing to {TTY}: {error}");
    }
}
