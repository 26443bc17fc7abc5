//! `rootcheck`: the root file system must be read-only even for root with
//! CAP_DAC_OVERRIDE, because it is mounted read-only, not merely because of permissions.

use std::fs::{self, OpenOptions};
use std::io;

use crate::mountinfo::root_mount;

const PROBE: &str = "/etc/carapace/probe";

pub fn run() {
    match fs::read_to_string("/proc/self/mountinfo").map(|text| root_mount(&text)) {
        Ok(Some(root)) => println!(
            "rootcheck fs={} ro={} source={}",
            root.fs_type,
            if root.read_only { "yes" } else { "no" },
            root.source
        ),
        Ok(None) => println!("rootcheck error=no mount of / in /proc/self/mountinfo"),
        Err(err) => println!("rootcheck error=cannot read /proc/self/mountinfo: {err}"),
    }
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(PROBE);
    match written {
        Ok(_) => {
            // Should never happen; leave the image as it was for whatever runs next.
            let _ = fs::remove_file(PROBE);
            println!("rootcheck write=ok");
        }
        Err(err) => println!("rootcheck write={}", errno_name(&err)),
    }
}

/// The symbolic name of the errno behind `err`, for the errors creating a file can give.
pub fn errno_name(err: &io::Error) -> String {
    let name = match err.raw_os_error() {
        Some(1) => "EPERM",
        Some(2) => "ENOENT",
        Some(5) => "EIO",
        Some(13) => "EACCES",
        Some(17) => "EEXIST",
        Some(20) => "ENOTDIR",
        Some(21) => "EISDIR",
        Some(22) => "EINVAL",
        Some(28) => "ENOSPC",
        Some(30) => "EROFS",
        Some(122) => "EDQUOT",
        Some(errno) => return format!("errno{errno}"),
        None => return format!("other({err})"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_errnos_that_matter() {
        assert_eq!(errno_name(&io::Error::from_raw_os_error(30)), "EROFS");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(13)), "EACCES");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(1)), "EPERM");
        assert_eq!(errno_name(&io::Error::from_raw_os_error(99)), "errno99");
    }

    #[test]
    fn real_error_is_named() {
        let err = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open("/nonexistent-dir/x")
            .unwrap_err();
        assert_eq!(errno_name(&err), "ENOENT");
    }
}
