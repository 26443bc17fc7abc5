//! adjtime(3): the kernel moves the clock by a few hundred parts per million until the offset
//! is gone, so time never jumps and never runs backwards under running programs. No crate we
//! use wraps it (rustix has clock_settime only), hence the one unsafe call here.
#![allow(unsafe_code)]

use crate::error::{Error, Result};

pub fn slew(secs: f64) -> Result<()> {
    let whole = secs.trunc();
    let delta = libc::timeval {
        tv_sec: whole as libc::time_t,
        tv_usec: ((secs - whole) * 1_000_000.0) as libc::suseconds_t,
    };
    // SAFETY: `delta` is a valid timeval for the duration of the call; a null old-delta
    // pointer is allowed and means "not wanted".
    let rc = unsafe { libc::adjtime(&delta, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::SlewClock {
            secs,
            source: std::io::Error::last_os_error(),
        })
    }
}
