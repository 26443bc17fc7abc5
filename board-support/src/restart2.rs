//! reboot(2) with LINUX_REBOOT_CMD_RESTART2 and an argument, which rustix does not offer: the
//! Raspberry Pi kernel's firmware driver reads [`crate::TRYBOOT_REBOOT_ARGUMENT`] from it to
//! set the firmware's one-shot tryboot flag. PID 1 calls it as the last step of a shutdown.

use std::ffi::CString;

use rustix::io::Errno;

/// Restarts with `argument`; returns only if the kernel refused, with its reason.
pub fn restart_with_argument(argument: &str) -> Errno {
    let Ok(argument) = CString::new(argument) else {
        return Errno::INVAL;
    };
    // SAFETY: reboot(2) only reads the NUL-terminated argument, which outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            argument.as_ptr(),
        );
    }
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}
