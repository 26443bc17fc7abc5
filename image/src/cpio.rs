//! A cpio "newc" archive writer for the initramfs. Hand-written (the format is a 110-byte
//! ASCII header per entry) so that entry order, modes, owners and times are exactly ours.

/// One archive member. Directories come before their contents (callers sort by path).
pub enum CpioEntry<'a> {
    Dir {
        path: &'a str,
        mode: u32,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
}

pub fn write_newc(entries: &[CpioEntry<'_>], mtime: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, entry) in entries.iter().enumerate() {
        let (path, mode, data): (&str, u32, &[u8]) = match entry {
            CpioEntry::Dir { path, mode } => (path, 0o040000 | mode, &[]),
            CpioEntry::File { path, mode, data } => (path, 0o100000 | mode, data),
        };
        let nlink = if matches!(entry, CpioEntry::Dir { .. }) {
            2
        } else {
            1
        };
        push_member(&mut out, ino as u32 + 1, mode, nlink, mtime, path, data);
    }
    push_member(&mut out, 0, 0, 1, 0, "TRAILER!!!", &[]);
    out
}

fn push_member(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    name: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's cpio lists what we wrote, with the right sizes.
    #[test]
    fn gnu_cpio_reads_it() {
        let archive = write_newc(
            &[
                CpioEntry::Dir {
                    path: "dev",
                    mode: 0o755,
                },
                CpioEntry::File {
                    path: "init",
                    mode: 0o755,
                    data: b"#!hello",
                },
                CpioEntry::File {
                    path: "dev/x",
                    mode: 0o644,
                    data: b"12345",
                },
            ],
            0,
        );
        assert_eq!(archive.len() % 4, 0);
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            panic!("cpio (Debian package cpio) is needed for this test: make deps");
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&archive).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("init") && listing.contains("dev/x"),
            "{listing}"
        );
        assert!(listing.contains(" 7 "), "{listing}");
    }
}
