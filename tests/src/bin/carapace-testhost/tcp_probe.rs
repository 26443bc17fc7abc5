//! Opens a TCP connection and checks that the return path works too: the echo server must
//! send the line back.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::probe_outcome::report;

pub fn run(address: SocketAddr, timeout: Duration) {
    report(probe(address, timeout));
}

fn probe(address: SocketAddr, timeout: Duration) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"carapace probe\n")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line == "carapace probe\n" {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the echo was {line:?}"),
        ))
    }
}
