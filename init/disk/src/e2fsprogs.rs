//! Running Debian's e2fsprogs (mke2fs, e2fsck, resize2fs; in the image's /usr/sbin with their
//! libraries): each with a clean environment, no stdin, its output kept off our stdout (which
//! carries only the result line) and its last lines passed on as progress.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::Error;

pub const MKE2FS: &str = "/usr/sbin/mke2fs";
pub const E2FSCK: &str = "/usr/sbin/e2fsck";
pub const RESIZE2FS: &str = "/usr/sbin/resize2fs";
/// /data is made with 4 KiB blocks (`-b 4096`), so its backup superblocks are at these
/// blocks (groups 1, 3, 5, 7, 9, 25, 27 of 32768 blocks; sparse_super).
pub const BACKUP_SUPERBLOCKS: [u64; 7] = [32768, 98304, 163840, 229376, 294912, 819200, 884736];
const BLOCK_SIZE: &str = "4096";
/// e2fsck's exit status: 1 = errors fixed, 2 = fixed, reboot advised; 4 and up = not fixed.
const E2FSCK_FIXED_MASK: i32 = 0b11;
const TAIL_LINES: usize = 8;

/// mke2fs with 4 KiB blocks (the backup superblocks sit where the repair looks for them),
/// lazy inode table and journal initialisation (the first boot does not spend minutes
/// zeroing an SD card) and no discard (so nothing beyond what mke2fs writes is touched).
pub fn make_filesystem(device: &Path) -> Result<(), Error> {
    let options = "lazy_itable_init=1,lazy_journal_init=1,nodiscard";
    let args = [
        "-t", "ext4", "-F", "-q", "-b", BLOCK_SIZE, "-L", "data", "-E", options,
    ];
    let code = run("mke2fs", MKE2FS, &args, device)?;
    if code == 0 {
        return Ok(());
    }
    Err(Error::Tool {
        program: "mke2fs",
        device: device.to_owned(),
        code,
        says: "see the lines above".to_owned(),
    })
}

/// `e2fsck -p`: replays the journal and fixes what is safe to fix without asking.
pub fn preen(device: &Path) -> Result<Fsck, Error> {
    run("e2fsck", E2FSCK, &["-p"], device).map(Fsck)
}

/// `e2fsck -f -y`: fixes everything it can, answering yes.
pub fn repair(device: &Path) -> Result<Fsck, Error> {
    run("e2fsck", E2FSCK, &["-f", "-y"], device).map(Fsck)
}

/// `e2fsck -f -y -b <block> -B 4096`: the same from a backup superblock, which e2fsck then
/// writes back over the primary.
pub fn repair_from_backup(device: &Path, block: u64) -> Result<Fsck, Error> {
    let block = block.to_string();
    let args = ["-f", "-y", "-b", block.as_str(), "-B", BLOCK_SIZE];
    run("e2fsck", E2FSCK, &args, device).map(Fsck)
}

/// `e2fsck -f -p` then `resize2fs`: the file system fills a partition that grew.
pub fn grow_filesystem(device: &Path) -> Result<(), Error> {
    let checked = run("e2fsck", E2FSCK, &["-f", "-p"], device).map(Fsck)?;
    if !checked.fixed() {
        return Err(checked.into_error(device));
    }
    let code = run("resize2fs", RESIZE2FS, &[], device)?;
    if code == 0 {
        return Ok(());
    }
    Err(Error::Tool {
        program: "resize2fs",
        device: device.to_owned(),
        code,
        says: "see the lines above".to_owned(),
    })
}

/// An e2fsck exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fsck(pub i32);

impl Fsck {
    /// The file system is consistent now (whether or not anything was changed).
    pub fn fixed(self) -> bool {
        self.0 >= 0 && self.0 & !E2FSCK_FIXED_MASK == 0
    }

    pub fn changed(self) -> bool {
        self.0 > 0 && self.fixed()
    }

    pub fn into_error(self, device: &Path) -> Error {
        Error::Tool {
            program: "e2fsck",
            device: device.to_owned(),
            code: self.0,
            says: "see the lines above".to_owned(),
        }
    }
}

/// Runs `path args device`, passes the last lines of its output on as progress, and returns
/// its exit code (-1 when a signal ended it).
fn run(program: &'static str, path: &str, args: &[&str], device: &Path) -> Result<i32, Error> {
    progress!("{program} {} {}", args.join(" "), device.display());
    let output = Command::new(path)
        .args(args)
        .arg(device)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { program, source })?;
    let code = output.status.code().unwrap_or(-1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in lines.iter().skip(lines.len().saturating_sub(TAIL_LINES)) {
        progress!("{program}: {line}");
    }
    progress!("{program} exit={code}");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext4;

    fn need(tool: &str) {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing on this machine; `make deps` installs e2fsprogs, which this \
             test needs to check our use of it against the real tool"
        );
    }

    #[test]
    fn fsck_codes() {
        assert!(Fsck(0).fixed() && !Fsck(0).changed());
        assert!(Fsck(1).fixed() && Fsck(1).changed());
        assert!(Fsck(3).fixed());
        assert!(!Fsck(4).fixed() && !Fsck(8).fixed() && !Fsck(-1).fixed());
    }

    /// The real tools: mke2fs makes a clean ext4 our reader agrees with; zeroing its primary
    /// superblock is repaired from the first backup.
    #[test]
    fn a_zeroed_primary_superblock_is_repaired_from_a_backup() {
        need(MKE2FS);
        need(E2FSCK);
        let image = tempfile::NamedTempFile::new().expect("temp");
        image.as_file().set_len(256 * 1024 * 1024).expect("size");
        make_filesystem(image.path()).expect("mke2fs");
        let made = ext4::read_superblock(image.path())
            .expect("read")
            .expect("ext4");
        assert!(made.clean(), "{made:?}");

        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(image.path())
            .expect("open");
        file.write_all_at(&[0u8; 1024], ext4::SUPERBLOCK_OFFSET)
            .expect("zero");
        assert_eq!(ext4::read_superblock(image.path()).expect("read"), None);
        let fsck = repair_from_backup(image.path(), BACKUP_SUPERBLOCKS[0]).expect("e2fsck");
        assert!(fsck.fixed(), "{fsck:?}");
        let repaired = ext4::read_superblock(image.path())
            .expect("read")
            .expect("ext4");
        assert!(repaired.clean(), "{repaired:?}");
    }
}
