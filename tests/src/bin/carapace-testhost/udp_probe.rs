//! Sends one datagram and waits for its echo. A datagram the output chain drops fails at
//! send with EPERM; one dropped further on (or never answered) times out.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::probe_outcome::report;

pub fn run(address: SocketAddr, timeout: Duration) {
    report(probe(address, timeout));
}

fn probe(address: SocketAddr, timeout: Duration) -> io::Result<()> {
    let local: SocketAddr = match address {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(address)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(b"carapace probe")?;
    let mut buffer = [0u8; 64];
    let len = socket.recv(&mut buffer)?;
    if buffer.get(..len) == Some(b"carapace probe".as_slice()) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a different echo",
        ))
    }
}
