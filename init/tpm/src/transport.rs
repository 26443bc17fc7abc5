//! Where commands go: the kernel's resource-managed TPM device on the box (each open is its own
//! context; what a process leaves loaded is flushed when it closes), or swtpm's command socket
//! in tests. Both carry the raw command and response bytes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::Error;

/// The kernel's TPM 2.0 resource manager.
pub const DEVICE: &str = "/dev/tpmrm0";
/// The largest response a TPM sends (MAX_RESPONSE_SIZE on every TPM we know).
const MAX_RESPONSE: usize = 4096;

pub trait Transport {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>>;
}

/// /dev/tpmrm0: one write per command, one read per response.
pub struct Device(std::fs::File);

impl Device {
    /// The box's TPM, or `None` when it has none (no driver bound, no device node).
    pub fn open(path: &Path) -> Result<Option<Device>, Error> {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(file) => Ok(Some(Device(file))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Open {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

impl Transport for Device {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.0.write_all(command)?;
        let mut response = vec![0; MAX_RESPONSE];
        let len = self.0.read(&mut response)?;
        response.truncate(len);
        Ok(response)
    }
}

/// swtpm's server socket (`swtpm socket --server type=unixio,path=...`): a byte stream, so the
/// response is read by the size in its header.
pub struct Socket(UnixStream);

impl Socket {
    pub fn connect(path: &Path) -> Result<Socket, Error> {
        UnixStream::connect(path)
            .map(Socket)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })
    }
}

impl Transport for Socket {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.0.write_all(command)?;
        let mut header = [0u8; 10];
        self.0.read_exact(&mut header)?;
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if !(header.len()..=MAX_RESPONSE).contains(&size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response size {size} is out of range"),
            ));
        }
        let mut rest = vec![0; size - header.len()];
        self.0.read_exact(&mut rest)?;
        Ok([header.as_slice(), &rest].concat())
    }
}
