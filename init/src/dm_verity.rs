//! The verity-checked root: a device-mapper `verity` target over the root partition, set up
//! with the device-mapper ioctls on /dev/mapper/control.
//!
//! Why not the kernel's `dm-mod.create=` parameter: dm-mod (and dm-verity, virtio-blk) are
//! modules in Debian's kernel, so when the kernel would read that parameter neither the
//! device-mapper nor the disk exists yet; only after stage 1 loaded the modules can the
//! table be loaded.
//!
//! The ioctl argument is a `struct dm_ioctl` (312 bytes) followed, for TABLE_LOAD, by one
//! `struct dm_target_spec` (40 bytes) and its NUL-terminated parameter string padded to 8
//! bytes. `data_size` covers the whole buffer and the kernel writes its answer into it.

use std::ffi::c_void;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use board_support::VerityParams;
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

use crate::error::{Context, Error, Result};
use board_support::block_devices::Partition;

pub const DM_IOCTL_SIZE: usize = 312;
pub const DM_TARGET_SPEC_SIZE: usize = 40;
const DM_NAME_LEN: usize = 128;
const DM_TARGET_TYPE_LEN: usize = 16;
const DM_IOCTL_TYPE: u8 = 0xfd;
pub const DM_READONLY_FLAG: u32 = 1;
/// The interface version this code speaks; the kernel accepts any 4.x up to its own.
const DM_VERSION: [u32; 3] = [4, 0, 0];

// struct dm_ioctl field offsets (include/uapi/linux/dm-ioctl.h).
const OFF_VERSION: usize = 0;
const OFF_DATA_SIZE: usize = 12;
const OFF_DATA_START: usize = 16;
const OFF_TARGET_COUNT: usize = 20;
const OFF_FLAGS: usize = 28;
const OFF_DEV: usize = 40;
const OFF_NAME: usize = 48;
// struct dm_target_spec field offsets, relative to the spec.
const SPEC_SECTOR_START: usize = 0;
const SPEC_LENGTH: usize = 8;
const SPEC_NEXT: usize = 20;
const SPEC_TARGET_TYPE: usize = 24;

/// The device-mapper name of the verified root; stage 2 finds the boot disk under it.
pub use board_support::block_devices::ROOT_DM_NAME;
const CONTROL: &str = "/dev/mapper/control";
const VERITY_BLOCK_SIZE: u64 = 4096;
const SECTORS_PER_BLOCK: u64 = VERITY_BLOCK_SIZE / 512;
const WAIT_FOR_NODE: Duration = Duration::from_secs(5);
const SCRUB_CHUNK: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmCommand {
    Version = 0,
    DevCreate = 3,
    DevSuspend = 6,
    TableLoad = 9,
}

impl DmCommand {
    /// `_IOWR(0xfd, nr, struct dm_ioctl)`.
    pub fn opcode(self) -> Opcode {
        rustix::ioctl::opcode::read_write::<[u8; DM_IOCTL_SIZE]>(DM_IOCTL_TYPE, self as u8)
    }

    fn name(self) -> &'static str {
        match self {
            DmCommand::Version => "DM_VERSION",
            DmCommand::DevCreate => "DM_DEV_CREATE",
            DmCommand::DevSuspend => "DM_DEV_SUSPEND",
            DmCommand::TableLoad => "DM_TABLE_LOAD",
        }
    }
}

/// One device-mapper target: `length` sectors from `sector_start`, of `target_type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub sector_start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

/// What dm-verity does when a block does not match its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCorruption {
    /// The read fails with EIO: stage 1's whole-root read turns that into a FATAL line that
    /// names the block.
    Fail,
    /// The kernel restarts the machine: a slot whose blocks go bad after boot burns its boot
    /// tries and the boot loader falls back to the other slot, instead of agentd reading
    /// EIO on a committed slot for ever.
    Restart,
}

/// The verity target of the contract: format 1, sha256, 4096-byte blocks, hash tree on the
/// same device after the data blocks, no verity superblock.
pub fn verity_target(dev: &str, verity: &VerityParams, on_corruption: OnCorruption) -> Target {
    let salt = if verity.salt.is_empty() {
        "-"
    } else {
        verity.salt.as_str()
    };
    Target {
        sector_start: 0,
        length: verity.data_blocks.saturating_mul(SECTORS_PER_BLOCK),
        target_type: "verity".to_owned(),
        params: format!(
            "1 {dev} {dev} {VERITY_BLOCK_SIZE} {VERITY_BLOCK_SIZE} {} {} sha256 {} {salt}{}",
            verity.data_blocks,
            verity.hash_start_block,
            verity.root_hash,
            match on_corruption {
                OnCorruption::Fail => "",
                OnCorruption::Restart => " 1 restart_on_corruption",
            }
        ),
    }
}

/// The ioctl buffer for a command on device `name`, with an optional table target.
pub fn pack(name: &str, flags: u32, target: Option<&Target>) -> Result<Vec<u8>> {
    if name.len() >= DM_NAME_LEN || name.contains('\0') {
        return Err(Error::Invalid(format!(
            "device-mapper name {name:?} is too long"
        )));
    }
    let target_bytes = match target {
        Some(target) => pack_target(target)?,
        None => Vec::new(),
    };
    let mut buffer = vec![0u8; DM_IOCTL_SIZE];
    for (i, part) in DM_VERSION.iter().enumerate() {
        put_u32(&mut buffer, OFF_VERSION + 4 * i, *part);
    }
    let data_size = u32::try_from(DM_IOCTL_SIZE + target_bytes.len())
        .map_err(|_| Error::Invalid("device-mapper table too large".to_owned()))?;
    put_u32(&mut buffer, OFF_DATA_SIZE, data_size);
    put_u32(&mut buffer, OFF_DATA_START, DM_IOCTL_SIZE as u32);
    put_u32(&mut buffer, OFF_TARGET_COUNT, u32::from(target.is_some()));
    put_u32(&mut buffer, OFF_FLAGS, flags);
    put_bytes(&mut buffer, OFF_NAME, name.as_bytes());
    buffer.extend_from_slice(&target_bytes);
    Ok(buffer)
}

fn pack_target(target: &Target) -> Result<Vec<u8>> {
    if target.target_type.len() >= DM_TARGET_TYPE_LEN {
        return Err(Error::Invalid(format!(
            "target type {:?} is too long",
            target.target_type
        )));
    }
    if target.params.contains('\0') {
        return Err(Error::Invalid("target parameters contain a NUL".to_owned()));
    }
    // The parameters and their NUL, padded so a following spec would be 8-byte aligned.
    let params_len = (target.params.len() + 1).next_multiple_of(8);
    let mut spec = vec![0u8; DM_TARGET_SPEC_SIZE + params_len];
    put_u64(&mut spec, SPEC_SECTOR_START, target.sector_start);
    put_u64(&mut spec, SPEC_LENGTH, target.length);
    put_u32(
        &mut spec,
        SPEC_NEXT,
        (DM_TARGET_SPEC_SIZE + params_len) as u32,
    );
    put_bytes(&mut spec, SPEC_TARGET_TYPE, target.target_type.as_bytes());
    put_bytes(&mut spec, DM_TARGET_SPEC_SIZE, target.params.as_bytes());
    Ok(spec)
}

/// The `dev` field of an answer: the device number in the kernel's `huge_encode_dev` form.
pub fn answer_dev(buffer: &[u8]) -> (u32, u32) {
    let mut field = [0u8; 8];
    if let Some(src) = buffer.get(OFF_DEV..OFF_DEV + 8) {
        field.copy_from_slice(src);
    }
    decode_dev(u64::from_le_bytes(field))
}

/// `new_decode_dev`: 12 bits of major, 20 bits of minor split around it.
pub fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    (major, minor)
}

/// Creates the read-only `name` device over `partition` with the verity table and returns
/// its device node, `/dev/dm-<minor>`.
pub fn activate(
    name: &str,
    partition: &Partition,
    verity: &VerityParams,
    on_corruption: OnCorruption,
) -> Result<PathBuf> {
    let control = open_control()?;
    let target = verity_target(&partition.dev_numbers, verity, on_corruption);

    call(&control, DmCommand::Version, &mut pack("", 0, None)?)?;
    call(
        &control,
        DmCommand::DevCreate,
        &mut pack(name, DM_READONLY_FLAG, None)?,
    )?;
    call(
        &control,
        DmCommand::TableLoad,
        &mut pack(name, DM_READONLY_FLAG, Some(&target))?,
    )?;
    // DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the loaded table goes live.
    let mut resume = pack(name, 0, None)?;
    call(&control, DmCommand::DevSuspend, &mut resume)?;

    let (_, minor) = answer_dev(&resume);
    wait_for(PathBuf::from(format!("/dev/dm-{minor}")))
}

/// Swaps the live table of `name` for one with another corruption policy: loaded as the
/// inactive table, then made live by a resume (the kernel suspends, swaps and resumes).
pub fn set_policy(
    name: &str,
    partition: &Partition,
    verity: &VerityParams,
    on_corruption: OnCorruption,
) -> Result<()> {
    let control = open_control()?;
    let target = verity_target(&partition.dev_numbers, verity, on_corruption);
    call(
        &control,
        DmCommand::TableLoad,
        &mut pack(name, DM_READONLY_FLAG, Some(&target))?,
    )?;
    call(&control, DmCommand::DevSuspend, &mut pack(name, 0, None)?)
}

fn open_control() -> Result<rustix::fd::OwnedFd> {
    let control = wait_for(PathBuf::from(CONTROL))?;
    rustix::fs::open(&control, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .context(|| format!("open {CONTROL}"))
}

/// Reads the whole verified device once. dm-verity checks a block only when it is read, so
/// a corrupted block in a file this boot never opens would otherwise go unnoticed and the
/// slot would be committed. Reading everything makes any flipped bit fail the boot (EIO)
/// before switch_root, and warms the page cache for the files stage 2 reads next.
pub fn verify_every_block(device: &Path, data_blocks: u64) -> Result<()> {
    let file = File::open(device).context(|| format!("open {}", device.display()))?;
    let total = data_blocks.saturating_mul(VERITY_BLOCK_SIZE);
    let mut buffer = vec![0u8; SCRUB_CHUNK];
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(SCRUB_CHUNK as u64) as usize;
        let chunk = buffer.get_mut(..len).unwrap_or_default();
        file.read_exact_at(chunk, offset).context(|| {
            format!(
                "verify {} (block {} of {data_blocks})",
                device.display(),
                offset / VERITY_BLOCK_SIZE
            )
        })?;
        offset += len as u64;
    }
    Ok(())
}

fn call(control: &impl rustix::fd::AsFd, command: DmCommand, buffer: &mut [u8]) -> Result<()> {
    let request = DmRequest {
        opcode: command.opcode(),
        buffer,
    };
    // SAFETY: the opcode is a device-mapper ioctl whose argument is a dm_ioctl buffer with
    // `data_size` set to the buffer's length, which the kernel neither reads nor writes past.
    unsafe { rustix::ioctl::ioctl(control, request) }
        .context(|| format!("{} on {CONTROL}", command.name()))
}

fn wait_for(path: PathBuf) -> Result<PathBuf> {
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > WAIT_FOR_NODE {
            return Err(Error::Timeout {
                what: path.display().to_string(),
                seconds: WAIT_FOR_NODE.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(path)
}

struct DmRequest<'a> {
    opcode: Opcode,
    buffer: &'a mut [u8],
}

// SAFETY: `as_ptr` points at a buffer that stays borrowed for the call; the kernel writes at
// most `data_size` (= its length) bytes back.
unsafe impl Ioctl for DmRequest<'_> {
    type Output = ();
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode
    }

    fn as_ptr(&mut self) -> *mut c_void {
        self.buffer.as_mut_ptr().cast()
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

fn put_u32(buffer: &mut [u8], offset: usize, value: u32) {
    put_bytes(buffer, offset, &value.to_ne_bytes());
}

fn put_u64(buffer: &mut [u8], offset: usize, value: u64) {
    put_bytes(buffer, offset, &value.to_ne_bytes());
}

fn put_bytes(buffer: &mut [u8], offset: usize, bytes: &[u8]) {
    if let Some(dst) = buffer.get_mut(offset..offset + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(buffer: &[u8], offset: usize) -> u32 {
        u32::from_ne_bytes(buffer[offset..offset + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(buffer: &[u8], offset: usize) -> u64 {
        u64::from_ne_bytes(buffer[offset..offset + 8].try_into().expect("8 bytes"))
    }

    fn params() -> VerityParams {
        VerityParams {
            root_hash: "ab".repeat(32),
            salt: "cd".repeat(32),
            data_blocks: 1000,
            hash_start_block: 1000,
        }
    }

    #[test]
    fn the_live_policy_restarts_on_corruption() {
        let fail = verity_target("254:2", &params(), OnCorruption::Fail);
        let restart = verity_target("254:2", &params(), OnCorruption::Restart);
        assert_eq!(
            restart.params,
            format!("{} 1 restart_on_corruption", fail.params)
        );
        assert!(fail.params.ends_with(&"cd".repeat(32)), "{}", fail.params);
    }

    #[test]
    fn opcodes_match_the_kernel_headers() {
        assert_eq!(DmCommand::Version.opcode() as u64, 0xc138_fd00);
        assert_eq!(DmCommand::DevCreate.opcode() as u64, 0xc138_fd03);
        assert_eq!(DmCommand::DevSuspend.opcode() as u64, 0xc138_fd06);
        assert_eq!(DmCommand::TableLoad.opcode() as u64, 0xc138_fd09);
    }

    #[test]
    fn a_bare_command_is_one_312_byte_struct() {
        let buffer = pack("root", DM_READONLY_FLAG, None).expect("pack");
        assert_eq!(buffer.len(), 312);
        assert_eq!(
            [u32_at(&buffer, 0), u32_at(&buffer, 4), u32_at(&buffer, 8)],
            [4, 0, 0]
        );
        assert_eq!(u32_at(&buffer, OFF_DATA_SIZE), 312);
        assert_eq!(u32_at(&buffer, OFF_DATA_START), 312);
        assert_eq!(u32_at(&buffer, OFF_TARGET_COUNT), 0);
        assert_eq!(u32_at(&buffer, OFF_FLAGS), DM_READONLY_FLAG);
        assert_eq!(&buffer[48..53], b"root\0");
        // name is char[128] at 48, uuid char[129] at 176, data char[7] at 305: ends at 312.
        assert!(buffer[53..312].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_table_load_appends_one_padded_target_spec() {
        let target = verity_target("254:2", &params(), OnCorruption::Fail);
        let buffer = pack("root", DM_READONLY_FLAG, Some(&target)).expect("pack");
        let params_len = (target.params.len() + 1).next_multiple_of(8);
        assert_eq!(buffer.len(), 312 + 40 + params_len);
        assert_eq!(buffer.len() % 8, 0);
        assert_eq!(u32_at(&buffer, OFF_DATA_SIZE) as usize, buffer.len());
        assert_eq!(u32_at(&buffer, OFF_TARGET_COUNT), 1);
        assert_eq!(u64_at(&buffer, 312), 0, "sector_start");
        assert_eq!(
            u64_at(&buffer, 320),
            8000,
            "length: 1000 blocks of 8 sectors"
        );
        assert_eq!(u32_at(&buffer, 328), 0, "status");
        assert_eq!(u32_at(&buffer, 332) as usize, 40 + params_len, "next");
        assert_eq!(&buffer[336..343], b"verity\0");
        let params = &buffer[352..];
        let nul = params.iter().position(|&b| b == 0).expect("NUL-terminated");
        assert_eq!(&params[..nul], target.params.as_bytes());
        assert!(params[nul..].iter().all(|&b| b == 0));
    }

    #[test]
    fn the_verity_table_follows_the_contract() {
        let target = verity_target("254:2", &params(), OnCorruption::Fail);
        assert_eq!(
            target.params,
            format!(
                "1 254:2 254:2 4096 4096 1000 1000 sha256 {} {}",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
        let no_salt = VerityParams {
            salt: String::new(),
            ..params()
        };
        assert!(
            verity_target("254:2", &no_salt, OnCorruption::Fail)
                .params
                .ends_with(" -")
        );
    }

    #[test]
    fn bad_names_and_types_are_refused() {
        assert!(pack(&"x".repeat(128), 0, None).is_err());
        assert!(pack(&"x".repeat(127), 0, None).is_ok());
        let mut target = verity_target("1:2", &params(), OnCorruption::Fail);
        target.target_type = "x".repeat(16);
        assert!(pack("root", 0, Some(&target)).is_err());
    }

    #[test]
    fn verify_reads_exactly_the_data_blocks() {
        let device = tempfile::NamedTempFile::new().expect("temp");
        device.as_file().set_len(3 * 4096 + 100).expect("size");
        verify_every_block(device.path(), 3).expect("three blocks readable");
        let err = verify_every_block(device.path(), 4).expect_err("the fourth is missing");
        assert!(err.to_string().contains("block 0 of 4"), "{err}");
    }

    #[test]
    fn device_numbers_decode_like_the_kernel() {
        // major 253, minor 0 → 0xfd00; minor 0x12345 puts 0x123 above the major.
        assert_eq!(decode_dev(0xfd00), (253, 0));
        assert_eq!(
            decode_dev((0x12300 << 12) | (253 << 8) | 0x45),
            (253, 0x12345)
        );
        let mut answer = vec![0u8; 312];
        answer[OFF_DEV..OFF_DEV + 8].copy_from_slice(&((254u64 << 8) | 3).to_ne_bytes());
        assert_eq!(answer_dev(&answer), (254, 3));
    }
}
