//! Brings up `lo`: services talk to each other (and to the DNS stub, later) on 127.0.0.1. The
//! kernel gives lo its address itself once the link is up.

use rustix::ioctl::Updater;
use rustix::net::{AddressFamily, SocketType};

use crate::error::{Context, Result};

const SIOCGIFFLAGS: rustix::ioctl::Opcode = 0x8913;
const SIOCSIFFLAGS: rustix::ioctl::Opcode = 0x8914;
const IFF_UP: u16 = 0x1;
/// `struct ifreq`: a 16-byte name and a 24-byte union, whose first member here is
/// `short ifr_flags`.
const IFREQ_SIZE: usize = 40;
const IFNAMSIZ: usize = 16;

pub fn bring_up(name: &str) -> Result<()> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)
        .context(|| "open a socket to configure lo".to_owned())?;
    let mut request = ifreq(name);
    // SAFETY: SIOCGIFFLAGS reads and writes a struct ifreq, which `request` is laid out as.
    unsafe {
        rustix::ioctl::ioctl(
            &socket,
            Updater::<SIOCGIFFLAGS, [u8; IFREQ_SIZE]>::new(&mut request),
        )
    }
    .context(|| format!("read the flags of {name}"))?;
    let up = flags(&request) | IFF_UP;
    set_flags(&mut request, up);
    // SAFETY: as above, SIOCSIFFLAGS with the flags just read plus IFF_UP.
    unsafe {
        rustix::ioctl::ioctl(
            &socket,
            Updater::<SIOCSIFFLAGS, [u8; IFREQ_SIZE]>::new(&mut request),
        )
    }
    .context(|| format!("bring {name} up"))
}

fn ifreq(name: &str) -> [u8; IFREQ_SIZE] {
    let mut request = [0u8; IFREQ_SIZE];
    let len = name.len().min(IFNAMSIZ - 1);
    if let (Some(dst), Some(src)) = (request.get_mut(..len), name.as_bytes().get(..len)) {
        dst.copy_from_slice(src);
    }
    request
}

fn flags(request: &[u8; IFREQ_SIZE]) -> u16 {
    u16::from_ne_bytes([request[IFNAMSIZ], request[IFNAMSIZ + 1]])
}

fn set_flags(request: &mut [u8; IFREQ_SIZE], flags: u16) {
    let [low, high] = flags.to_ne_bytes();
    request[IFNAMSIZ] = low;
    request[IFNAMSIZ + 1] = high;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_holds_the_name_and_the_flags_after_it() {
        let mut request = ifreq("lo");
        assert_eq!(&request[..3], b"lo\0");
        set_flags(&mut request, 0x49);
        assert_eq!(flags(&request), 0x49);
        assert_eq!(request[16..18], 0x49u16.to_ne_bytes());
        assert_eq!(&ifreq("a-very-long-interface-name")[15..17], &[0, 0]);
    }
}
