//! Leaving the initramfs for the verified root, the way busybox's switch_root does it: the
//! initramfs (rootfs) cannot be unmounted or pivoted away from, so its files are deleted to
//! give their memory back, the new root is moved over `/`, and /sbin/init is exec'd as PID 1.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use crate::error::{Context, Error, Result};
use crate::mounts;

const RAMFS_MAGIC: u64 = 0x8584_58f6;
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Moves /dev, /proc and /sys under `new_root`, makes it `/` and execs `init` there with
/// the environment the kernel gave us.
pub fn switch_root(new_root: &str, init: &str) -> Result<Infallible> {
    for dir in ["/dev", "/proc", "/sys"] {
        mounts::move_mount(dir, &format!("{new_root}{dir}"))?;
    }
    rustix::process::chdir(new_root).context(|| format!("chdir {new_root}"))?;
    delete_initramfs_files();
    mounts::move_mount(".", "/")?;
    rustix::process::chroot(".").context(|| "chroot into the new root".to_owned())?;
    rustix::process::chdir("/").context(|| "chdir / in the new root".to_owned())?;
    let err = Command::new(init).exec();
    Err(Error::Io {
        what: format!("exec {init}"),
        source: err,
    })
}

/// Deletes everything on the initramfs, staying on its device so nothing mounted below it
/// (the new root) is touched. Best effort: what cannot be deleted only costs memory. Refuses
/// to run on anything but ramfs/tmpfs, so a mistaken run on a disk root deletes nothing.
fn delete_initramfs_files() {
    let Ok(root) = rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(statfs) = rustix::fs::fstatfs(&root) else {
        return;
    };
    let magic = statfs.f_type as u64;
    if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
        return;
    }
    let Ok(stat) = rustix::fs::fstat(&root) else {
        return;
    };
    delete_tree(root.as_fd(), stat.st_dev);
}

fn delete_tree(dir: BorrowedFd<'_>, device: u64) {
    let Ok(mut listing) = Dir::read_from(dir) else {
        return;
    };
    let mut names = Vec::new();
    while let Some(Ok(entry)) = listing.read() {
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        let Ok(stat) = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if stat.st_dev != device {
            continue;
        }
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            if let Ok(child) = rustix::fs::openat(dir, &name, flags, Mode::empty()) {
                delete_tree(child.as_fd(), device);
            }
            let _ = rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR);
        } else {
            let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_tree_removes_everything_below_a_directory() {
        let top = tempfile::tempdir().expect("tempdir");
        let base = top.path();
        std::fs::create_dir_all(base.join("lib/modules/6.12/kernel")).expect("mkdir");
        std::fs::write(base.join("init"), b"binary").expect("write");
        std::fs::write(base.join("lib/modules/6.12/kernel/a.ko"), b"ko").expect("write");
        std::os::unix::fs::symlink("/nowhere", base.join("link")).expect("symlink");
        let dir = rustix::fs::open(base, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .expect("open");
        let device = rustix::fs::fstat(&dir).expect("stat").st_dev;
        delete_tree(dir.as_fd(), device);
        assert_eq!(std::fs::read_dir(base).expect("list").count(), 0);
    }

    #[test]
    fn delete_tree_stays_on_its_device() {
        let top = tempfile::tempdir().expect("tempdir");
        std::fs::write(top.path().join("file"), b"x").expect("write");
        let dir = rustix::fs::open(
            top.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        // Pretend the files are on another device: nothing may be deleted.
        delete_tree(dir.as_fd(), u64::MAX);
        assert!(top.path().join("file").exists());
    }
}
