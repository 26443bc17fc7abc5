//! What `carapace flash --to PATH` points at, and whether it may be overwritten. A disk is
//! looked up in sysfs and in the host's mount and swap tables before anything is opened for
//! writing; the checks that keep the host's own disks safe cannot be forced.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A block device's number, as sysfs and /proc/self/mountinfo write it (`major:minor`).
pub type DevNo = (u32, u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file, made (or replaced, with --force) whole.
    File {
        path: PathBuf,
        exists: bool,
    },
    Disk(Disk),
}

/// A block device and what the host does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    /// The kernel's name: sdb, mmcblk0, loop3.
    pub name: String,
    pub devno: DevNo,
    pub size: u64,
    pub removable: bool,
    /// Set when `path` is a partition: the disk it belongs to and its number there.
    pub partition_of: Option<(String, u32)>,
    /// How the host uses the disk or its partitions: mounted, swap, held by another device.
    pub in_use: Vec<String>,
    /// Set when the host's root filesystem lives on this disk.
    pub host_root: bool,
}

/// Looks `path` up; it need not exist (a file to make).
pub fn inspect(path: &Path) -> Result<Target, String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !in_dev(path) => {
            return Ok(Target::File {
                path: path.to_path_buf(),
                exists: false,
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "there is no disk {}: is the card or stick plugged in? (lsblk lists the disks)",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot look at {}: {e}", path.display())),
    };
    let kind = meta.file_type();
    if kind.is_file() && in_dev(path) {
        return Err(format!(
            "{} is a plain file in /dev, not a disk: a mistyped name? (lsblk lists the disks)",
            path.display()
        ));
    }
    if kind.is_file() {
        return Ok(Target::File {
            path: path.to_path_buf(),
            exists: true,
        });
    }
    if !kind.is_block_device() {
        return Err(format!(
            "{} is neither a disk (a block device such as /dev/sdb) nor a regular file",
            path.display()
        ));
    }
    let rdev = meta.rdev();
    let devno = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    Sysfs::host().disk(path, devno).map(Target::Disk)
}

/// Names under /dev are disks: a missing one is a card not plugged in, never a file to make.
fn in_dev(path: &Path) -> bool {
    std::path::absolute(path).is_ok_and(|p| p.starts_with("/dev"))
}

/// Why `target` must not get an image of `image_len` bytes, if it must not.
pub fn refusal(target: &Target, image_len: u64, force: bool) -> Option<String> {
    let disk = match target {
        Target::File { path, exists } => {
            return (*exists && !force).then(|| {
                format!(
                    "{} exists; add --force to replace it, or name a new file",
                    path.display()
                )
            });
        }
        Target::Disk(disk) => disk,
    };
    let path = disk.path.display();
    if let Some((parent, number)) = &disk.partition_of {
        return Some(format!(
            "{path} is partition {number} of /dev/{parent}: flash the whole disk, --to /dev/{parent}"
        ));
    }
    if disk.host_root {
        return Some(format!(
            "{path} is the disk this computer runs from (its / is on it); name the SD card or \
             USB stick instead (lsblk lists the disks, with their sizes and models)"
        ));
    }
    if !disk.in_use.is_empty() {
        return Some(format!(
            "{path} is in use: {}; unmount it (or stop what uses it) and try again",
            disk.in_use.join(", ")
        ));
    }
    if disk.size < image_len {
        return Some(format!(
            "{path} holds {} but the image is {}; use a card or stick of at least {}",
            human(disk.size),
            human(image_len),
            human(image_len)
        ));
    }
    if !disk.removable && !force {
        return Some(format!(
            "{path} is not a removable disk (an internal drive?); if it really is the one to \
             overwrite, add --force"
        ));
    }
    None
}

/// Bytes as people read disk sizes: "3.7 GiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The host's view of its block devices: sysfs, the mount table and the swap table. Tests
/// point it at a fake tree.
pub struct Sysfs {
    /// /sys/dev/block, with one `major:minor` link per device.
    pub dev_block: PathBuf,
    pub mountinfo: String,
    /// /proc/swaps, with each swap area's devno looked up already.
    pub swaps: Vec<(String, DevNo)>,
}

impl Sysfs {
    pub fn host() -> Sysfs {
        let swaps = std::fs::read_to_string("/proc/swaps")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|line| {
                let name = unescape(line.split_whitespace().next()?);
                let meta = std::fs::metadata(&name).ok()?;
                meta.file_type()
                    .is_block_device()
                    .then(|| (name, devno_of(meta.rdev())))
            })
            .collect();
        Sysfs {
            dev_block: PathBuf::from("/sys/dev/block"),
            mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            swaps,
        }
    }

    /// Everything about the disk at `path` (device `devno`) that decides whether to flash it.
    pub fn disk(&self, path: &Path, devno: DevNo) -> Result<Disk, String> {
        let dir = self.device_dir(devno).ok_or_else(|| {
            format!(
                "{} ({}:{}) is not in {}: is it a disk?",
                path.display(),
                devno.0,
                devno.1,
                self.dev_block.display()
            )
        })?;
        let name = file_name(&dir);
        let partition_of = read_trimmed(&dir.join("partition")).map(|number| {
            (
                dir.parent().map(file_name).unwrap_or_default(),
                number.parse().unwrap_or(0),
            )
        });
        let sectors: u64 = read_trimmed(&dir.join("size"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("cannot read the size of {}", path.display()))?;
        let removable = read_trimmed(&dir.join("removable")).as_deref() == Some("1");

        // The disk and each of its partitions, by number.
        let mut members = vec![(name.clone(), devno, dir.clone())];
        if partition_of.is_none() {
            members.extend(partitions(&dir));
        }
        let numbers: BTreeSet<DevNo> = members.iter().map(|(_, n, _)| *n).collect();
        let mut in_use = Vec::new();
        for (mount_devno, mount_point) in mounts(&self.mountinfo) {
            if let Some((member, _, _)) = members.iter().find(|(_, n, _)| *n == mount_devno) {
                in_use.push(format!("/dev/{member} is mounted at {mount_point}"));
            }
        }
        for (swap, swap_devno) in &self.swaps {
            if numbers.contains(swap_devno) {
                in_use.push(format!("{swap} is swap space (swapoff {swap})"));
            }
        }
        for (member, _, member_dir) in &members {
            for holder in list_names(&member_dir.join("holders")) {
                in_use.push(format!(
                    "/dev/{member} is held by /dev/{holder} (device-mapper, LVM or RAID)"
                ));
            }
        }
        in_use.dedup();
        let root_disks = self.root_disks();
        Ok(Disk {
            path: path.to_path_buf(),
            name,
            devno,
            size: sectors.saturating_mul(512),
            removable,
            host_root: partition_of.is_none() && root_disks.contains(&devno),
            partition_of,
            in_use,
        })
    }

    /// The whole disks under the host's root filesystem: its device, the disk a partition is
    /// on, and the disks under a device-mapper or RAID device (its `slaves`).
    pub fn root_disks(&self) -> BTreeSet<DevNo> {
        let mut disks = BTreeSet::new();
        let root = mounts(&self.mountinfo)
            .into_iter()
            .find(|(_, point)| point == "/");
        let mut pending: Vec<PathBuf> = root
            .and_then(|(devno, _)| self.device_dir(devno))
            .into_iter()
            .collect();
        while let Some(dir) = pending.pop() {
            let slaves = list_names(&dir.join("slaves"));
            if !slaves.is_empty() {
                for slave in slaves {
                    let link = dir.join("slaves").join(slave);
                    pending.extend(std::fs::canonicalize(link).ok());
                }
                continue;
            }
            let disk_dir = if dir.join("partition").exists() {
                dir.parent().map(Path::to_path_buf).unwrap_or(dir)
            } else {
                dir
            };
            if let Some(devno) = read_trimmed(&disk_dir.join("dev")).and_then(|d| parse_devno(&d)) {
                disks.insert(devno);
            }
        }
        disks
    }

    /// The disks a person flashing a box may mean, one line each ("/dev/sdb: 29.7 GiB,
    /// SanDisk Ultra, removable"): whole, physical disks that may be flashed without --force
    /// (removable, not in use, not the host's).
    pub fn candidates(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for link in list_names(&self.dev_block) {
            let Some(devno) = parse_devno(&link) else {
                continue;
            };
            let Some(dir) = self.device_dir(devno) else {
                continue;
            };
            // Loop, RAM, device-mapper and RAID devices are virtual; partitions are not disks.
            if dir.to_string_lossy().contains("/virtual/") || dir.join("partition").exists() {
                continue;
            }
            let path = PathBuf::from("/dev").join(file_name(&dir));
            let Ok(disk) = self.disk(&path, devno) else {
                continue;
            };
            if disk.size == 0 || refusal(&Target::Disk(disk.clone()), 0, false).is_some() {
                continue;
            }
            let model = ["vendor", "model"]
                .iter()
                .filter_map(|f| read_trimmed(&dir.join("device").join(f)))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let model = if model.is_empty() {
                String::new()
            } else {
                format!(", {model}")
            };
            lines.push(format!(
                "{}: {}{model}, removable",
                path.display(),
                human(disk.size)
            ));
        }
        lines
    }

    fn device_dir(&self, devno: DevNo) -> Option<PathBuf> {
        let link = self.dev_block.join(format!("{}:{}", devno.0, devno.1));
        std::fs::canonicalize(link).ok()
    }
}

/// The partitions of the disk whose sysfs folder is `dir`: name, devno, folder.
fn partitions(dir: &Path) -> Vec<(String, DevNo, PathBuf)> {
    let mut found = Vec::new();
    for name in list_names(dir) {
        let sub = dir.join(&name);
        if !sub.join("partition").exists() {
            continue;
        }
        if let Some(devno) = read_trimmed(&sub.join("dev")).and_then(|d| parse_devno(&d)) {
            found.push((name, devno, sub));
        }
    }
    found
}

/// (devno, mount point) of every mount in a mountinfo text.
fn mounts(mountinfo: &str) -> Vec<(DevNo, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let devno = parse_devno(fields.get(2)?)?;
            Some((devno, unescape(fields.get(4)?)))
        })
        .collect()
}

fn parse_devno(text: &str) -> Option<DevNo> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn devno_of(rdev: u64) -> DevNo {
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

/// The kernel's octal escapes in mount tables (`\040` for a space).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
