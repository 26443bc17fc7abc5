//! The baseline's initramfs. Debian's kernel has virtio_blk and ext4 as modules, so something
//! must load them before systemd can start from the root. This is the smallest honest way:
//! Debian's busybox-static, the modules (with their dependencies) and a shell /init. It only
//! serves to boot the baseline; Debian's own initramfs-tools image would add seconds of udev
//! and scripts, which are not what the comparison is about.

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_image::apt::{Apt, Sources};
use carapace_image::cpio::{CpioEntry, write_newc};
use carapace_image::kmod::ModuleFile;
use carapace_image::tools;

use super::debian_root::SUITE;
use super::error::{Context, Result, fail};

/// What the initramfs loads: the disk, and ext4 with the crc32c it checksums metadata with
/// (a soft dependency, so not in ext4's modinfo `depends=`).
pub const MODULES: &[&str] = &["virtio_blk", "crc32c_generic", "ext4"];

/// Loads the modules (dependencies first), mounts the root and hands over to systemd. The
/// root is always /dev/vda2: the bench makes the disk and boots it on virtio. On failure it
/// powers the machine off, so the bench sees QEMU exit instead of waiting for its timeout.
fn init_script(module_paths: &[String]) -> String {
    format!(
        r#"#!/bin/busybox sh
# Carapace's benchmark baseline: load the disk and file system drivers, mount the root, start systemd.
bb=/bin/busybox
die() {{ echo "baseline initramfs: $*"; $bb poweroff -f; }}
$bb mount -t devtmpfs devtmpfs /dev
for module in {modules}; do
    $bb insmod "/$module" || die "insmod $module failed"
done
tries=0
while [ ! -b /dev/vda2 ]; do
    tries=$((tries + 1))
    [ $tries -gt 1000 ] && die "no /dev/vda2 after 10 s"
    $bb sleep 0.01
done
$bb mount -t ext4 -o rw /dev/vda2 /newroot || die "cannot mount /dev/vda2"
$bb mount --move /dev /newroot/dev
exec $bb switch_root /newroot /sbin/init
"#,
        modules = module_paths.join(" ")
    )
}

/// Debian's statically linked busybox for SUITE, downloaded with the builder's private apt
/// configuration (signed index) and unpacked once under `<cache>/bench/`.
pub fn busybox(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("bench").join(format!("busybox-static-{SUITE}"));
    let find = |dir: &Path| {
        ["usr/bin/busybox", "bin/busybox"]
            .map(|p| dir.join(p))
            .into_iter()
            .find(|p| p.is_file())
    };
    if let Some(binary) = find(&dir) {
        return Ok(binary);
    }
    tools::require("dpkg-deb", "dpkg").map_err(|e| fail(e.to_string()))?;
    let mut apt = Apt::new(cache, SUITE, SUITE, "amd64", Sources::configured())
        .context(|| "set up apt for busybox-static".into())?;
    let entry = apt
        .require("busybox-static")
        .context(|| format!("find busybox-static in Debian {SUITE}"))?;
    let deb = apt
        .download(&entry, &cache.join("bench").join("debs"))
        .context(|| format!("download busybox-static {}", entry.version))?;
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    tools::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))
        .context(|| format!("unpack {}", deb.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)
        .context(|| format!("rename {} to {}", partial.display(), dir.display()))?;
    find(&dir).ok_or_else(|| {
        fail(format!(
            "busybox-static {} has no busybox binary (looked in {})",
            entry.version,
            dir.display()
        ))
    })
}

/// The cpio archive (newc, zstd), with the modules uncompressed for busybox's insmod.
pub fn build(busybox: &[u8], release: &str, modules: &[ModuleFile]) -> Result<Vec<u8>> {
    let module_root = format!("lib/modules/{release}");
    let module_paths: Vec<String> = modules
        .iter()
        .map(|m| format!("{module_root}/{}", m.rel_path))
        .collect();
    let init = init_script(&module_paths);

    let mut files: Vec<(String, u32, &[u8])> = vec![
        ("init".into(), 0o755, init.as_bytes()),
        ("bin/busybox".into(), 0o755, busybox),
    ];
    for (path, m) in module_paths.iter().zip(modules) {
        files.push((path.clone(), 0o644, &m.data));
    }
    let mut dirs: std::collections::BTreeSet<String> =
        ["dev", "proc", "sys", "newroot"].map(String::from).into();
    for (path, _, _) in &files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    // Sorted by path, a directory comes before what it holds.
    let mut entries: Vec<(&str, CpioEntry<'_>)> = dirs
        .iter()
        .map(|d| {
            (
                d.as_str(),
                CpioEntry::Dir {
                    path: d,
                    mode: 0o755,
                },
            )
        })
        .collect();
    for (path, mode, data) in &files {
        entries.push((
            path.as_str(),
            CpioEntry::File {
                path,
                mode: *mode,
                data,
            },
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let archive = write_newc(&entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), 0);
    zstd::bulk::compress(&archive, 19).context(|| "compress the baseline's initramfs".into())
}
