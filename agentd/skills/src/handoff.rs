//! How a call reaches the skill host service: agentd connects to its socket
//! ([`SKILLHOST_SOCKET`](crate::SKILLHOST_SOCKET)) and sends the call's line together with an
//! open descriptor of the skill's component (SCM_RIGHTS). The skill host runs under a uid of its
//! own and cannot open agentd's files (an installed skill lives in agentd's private state
//! directory), so it reads the one file it is handed, and nothing else of agentd's. The rest of
//! the conversation is plain JSON lines on the same connection (sandbox_protocol).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The longest first line taken: a call's arguments are the model's, and small.
pub const MAX_CALL_BYTES: usize = 1 << 20;

/// Sends `line` (ending in a newline) with `component`'s descriptor over `socket`.
pub fn send_call(
    socket: BorrowedFd<'_>,
    line: &[u8],
    component: BorrowedFd<'_>,
) -> std::io::Result<()> {
    let fds = [component];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("no room for the descriptor"));
    }
    let mut sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(line)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    // The descriptor went with the first byte; the rest of a long line follows plainly.
    while sent < line.len() {
        sent += rustix::net::send(socket, &line[sent..], SendFlags::NOSIGNAL)?;
    }
    Ok(())
}

/// Receives the first line and the descriptor sent with it, if one was, from `socket`: (the
/// line without its newline, the descriptor). Nothing follows the line until the host answers,
/// so reading stops at its newline.
pub fn receive_call(socket: BorrowedFd<'_>) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut line = Vec::new();
    let mut component = None;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut chunk)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                for fd in fds {
                    // One is expected; more are dropped (closed) here.
                    component.get_or_insert(fd);
                }
            }
        }
        let bytes = chunk.get(..received.bytes).unwrap_or_default();
        if bytes.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection ended before a whole call",
            ));
        }
        line.extend_from_slice(bytes);
        if line.len() > MAX_CALL_BYTES {
            return Err(std::io::Error::other(format!(
                "a call of more than {MAX_CALL_BYTES} bytes"
            )));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            return Ok((line, component));
        }
    }
}

/// The uid of the process at the other end of `socket`.
pub fn peer_uid(socket: impl AsFd) -> std::io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(socket)?.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_call_and_its_component_cross_a_socket_together() {
        let (agentd, host) = UnixStream::pair().unwrap();
        let mut component = tempfile::tempfile().unwrap();
        component.write_all(b"\0asm component").unwrap();
        component.rewind().unwrap();
        let long_line = format!("{{\"call\": \"{}\"}}\n", "x".repeat(300_000));
        let sender = std::thread::spawn({
            let line = long_line.clone();
            move || send_call(agentd.as_fd(), line.as_bytes(), component.as_fd()).map(|()| agentd)
        });
        let (line, fd) = receive_call(host.as_fd()).unwrap();
        let _agentd = sender.join().unwrap().unwrap();
        assert_eq!(line, long_line.trim_end().as_bytes());
        let mut bytes = Vec::new();
        std::fs::File::from(fd.unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes, b"\0asm component");
        assert_eq!(peer_uid(&host).unwrap(), rustix::process::getuid().as_raw());
    }

    #[test]
    fn a_line_without_a_descriptor_comes_alone_and_one_cut_short_is_refused() {
        let (mut agentd, host) = UnixStream::pair().unwrap();
        agentd.write_all(b"{\"forget\": 1}\n").unwrap();
        let (line, fd) = receive_call(host.as_fd()).unwrap();
        assert_eq!(
            (line.as_slice(), fd.is_none()),
            (b"{\"forget\": 1}".as_slice(), true)
        );

        let (mut agentd, host) = UnixStream::pair().unwrap();
        agentd.write_all(b"{\"call\"").unwrap();
        drop(agentd);
        let err = receive_call(host.as_fd()).unwrap_err();
        assert!(
            err.to_string().contains("ended before a whole call"),
            "{err}"
        );
    }
}
