//! File descriptors 0, 1 and 2 must be open. The kernel opens /dev/console on them only if
//! the initramfs has that node, which ours does not (its /dev is empty until devtmpfs is
//! mounted). With them closed, the next file opened would become "stdout", and any stray
//! write to fd 1 or 2 would land in it: a disk, say.

use std::os::fd::{AsRawFd, IntoRawFd};

use rustix::fs::{Mode, OFlags};

/// Fills whichever of fds 0-2 are closed with /dev/null.
pub fn ensure_standard_fds() {
    loop {
        let Ok(fd) = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()) else {
            return;
        };
        if fd.as_raw_fd() > 2 {
            return;
        }
        // Deliberately leaked: it now is stdin, stdout or stderr for the life of PID 1.
        let _ = fd.into_raw_fd();
    }
}
