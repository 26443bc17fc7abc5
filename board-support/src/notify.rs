//! The line protocols of a service's pipes to PID 1 (docs/boot-contract.md): stdout/stderr
//! lines are logged, and fd 3 carries `READY=1`, `WATCHDOG=1` and `STATUS=<text>` lines. One
//! definition for PID 1 and the services. Reads arrive in arbitrary pieces, so bytes are
//! collected until a newline.

/// Longest line passed on; the rest of a longer line starts a new one.
pub const MAX_LINE_BYTES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Ready,
    Watchdog,
    Status(String),
    /// Restart the box, in order (honoured only from a service with `reboot = true`).
    Reboot,
    /// Restart into the kernel the service loaded with kexec_load: a Raspberry Pi's trial slot
    /// under a kernel without the tryboot hook ([`crate::TrialReboot::Kexec`]). A plain restart
    /// when none is loaded.
    RebootKexec,
    /// Restart with the Raspberry Pi firmware's one-shot tryboot flag
    /// ([`crate::TrialReboot::Tryboot`]).
    RebootTryboot,
    /// Anything else; ignored, so a newer service can talk to an older PID 1.
    Unknown(String),
}

impl std::fmt::Display for Message {
    /// The line a service writes (without its newline); `parse` reads it back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Ready => f.write_str("READY=1"),
            Message::Watchdog => f.write_str("WATCHDOG=1"),
            Message::Status(text) => write!(f, "STATUS={text}"),
            Message::Reboot => f.write_str("REBOOT=1"),
            Message::RebootKexec => f.write_str("REBOOT=kexec"),
            Message::RebootTryboot => f.write_str("REBOOT=tryboot"),
            Message::Unknown(line) => f.write_str(line),
        }
    }
}

pub fn parse(line: &str) -> Message {
    let line = line.trim_end_matches('\r');
    match line {
        "READY=1" => Message::Ready,
        "WATCHDOG=1" => Message::Watchdog,
        "REBOOT=1" => Message::Reboot,
        "REBOOT=kexec" => Message::RebootKexec,
        "REBOOT=tryboot" => Message::RebootTryboot,
        _ => match line.strip_prefix("STATUS=") {
            Some(status) => Message::Status(status.to_owned()),
            None => Message::Unknown(line.to_owned()),
        },
    }
}

/// Splits a byte stream into lines; a line longer than [`MAX_LINE_BYTES`] is cut into
/// pieces of that size so a service without newlines cannot make PID 1 grow without bound.
#[derive(Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let (line, rest) = bytes.split_at(end);
                    self.pending.extend_from_slice(line);
                    lines.push(std::mem::take(&mut self.pending));
                    bytes = rest.get(1..).unwrap_or_default();
                }
                None => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            while self.pending.len() >= MAX_LINE_BYTES {
                let rest = self.pending.split_off(MAX_LINE_BYTES);
                lines.push(std::mem::replace(&mut self.pending, rest));
            }
        }
        lines
    }

    /// What is left when the pipe closes: a last line without its newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_messages() {
        assert_eq!(parse("READY=1"), Message::Ready);
        assert_eq!(parse("REBOOT=1"), Message::Reboot);
        assert_eq!(Message::Reboot.to_string(), "REBOOT=1");
        for message in [Message::RebootKexec, Message::RebootTryboot] {
            assert_eq!(parse(&message.to_string()), message);
        }
        assert_eq!(parse("WATCHDOG=1\r"), Message::Watchdog);
        assert_eq!(
            parse("STATUS=paired, 2 chats"),
            Message::Status("paired, 2 chats".to_owned())
        );
        assert_eq!(parse("STATUS="), Message::Status(String::new()));
        assert_eq!(parse("READY=0"), Message::Unknown("READY=0".to_owned()));
        assert_eq!(parse(""), Message::Unknown(String::new()));
    }

    #[test]
    fn lines_are_joined_across_reads() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(b"REA").is_empty());
        assert_eq!(buffer.push(b"DY=1\nWATCH"), vec![b"READY=1".to_vec()]);
        assert_eq!(
            buffer.push(b"DOG=1\n\nSTATUS=x\n"),
            vec![b"WATCHDOG=1".to_vec(), Vec::new(), b"STATUS=x".to_vec()]
        );
        assert_eq!(buffer.finish(), None);
        buffer.push(b"tail");
        assert_eq!(buffer.finish(), Some(b"tail".to_vec()));
        assert_eq!(buffer.finish(), None);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let mut buffer = LineBuffer::default();
        let lines = buffer.push(&vec![b'a'; MAX_LINE_BYTES * 2 + 10]);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE_BYTES));
        assert_eq!(buffer.push(b"\n"), vec![vec![b'a'; 10]]);
    }
}
