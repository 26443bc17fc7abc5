//! Telling the kernel a partition grew. BLKRRPART would re-read the whole table, which the
//! kernel refuses while root-a is in use; BLKPG_RESIZE_PARTITION changes just this partition.

use std::ffi::c_void;
use std::fs::File;
use std::io;

use rustix::ioctl::{Opcode, Setter, opcode};

const BLKPG: Opcode = opcode::none(0x12, 105);
const BLKPG_RESIZE_PARTITION: i32 = 3;

/// `struct blkpg_partition` (linux/blkpg.h); start and length in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: i32,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: i32,
    flags: i32,
    datalen: i32,
    data: *mut c_void,
}

/// Partition `number` of `disk` now spans `length` bytes from byte `start`.
pub fn resize_partition(disk: &File, number: u32, start: u64, length: u64) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let mut partition = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| invalid("start"))?,
        length: i64::try_from(length).map_err(|_| invalid("length"))?,
        pno: i32::try_from(number).map_err(|_| invalid("partition number"))?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as i32,
        data: (&raw mut partition).cast(),
    };
    // SAFETY: BLKPG reads a blkpg_ioctl_arg whose `data` points at a blkpg_partition of
    // `datalen` bytes; both live on this stack frame for the duration of the call.
    unsafe { rustix::ioctl::ioctl(disk, Setter::<BLKPG, BlkpgIoctlArg>::new(arg)) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_match_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
        assert_eq!(BLKPG as u64, 0x1269);
    }
}
