//! The baseline's root file system: Debian's own minimal system with systemd, made by
//! debootstrap from Debian's packages (once per suite, cached), then set up the way an image
//! builder would (host name, fstab, apt caches emptied), given the bench's readiness report,
//! and packed into ext4 with the host's mke2fs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_image::kmod::ModuleFile;
use carapace_image::tools;

use super::error::{Context, Result, fail};

pub const SUITE: &str = "trixie";
/// minbase: the packages of priority required, plus apt; no init system. systemd-sysv makes
/// systemd PID 1; udev loads drivers; kmod (depmod, modprobe) comes with every Debian kernel;
/// dbus is the first thing systemd Recommends (debootstrap skips Recommends, apt would not):
/// without it there is no logind, so nothing powers off on the power button, and Debian
/// starts five extra gettys instead (getty-static.service).
const VARIANT: &str = "minbase";
const INCLUDE: &str = "systemd-sysv,udev,kmod,dbus";
pub const HOSTNAME: &str = "debian";

/// Writes the bench's lines once multi-user.target is reached: `ready` with the time since the
/// kernel started (/proc/uptime is CLOCK_BOOTTIME, the clock of Carapace's `boot_ms`), 3 s
/// later (as Carapace's PID 1 does after its ready line) `idle rss` with the resident memory
/// of PID 1 and of every process, and `settled rss` once udevd's workers have exited: udevd
/// keeps one per boot-time device event for a while, tens of MiB in all at 3 s, gone soon
/// after. The script's own shell is the probe, not the system: it is left out.
/// Through /dev/kmsg at error level (shown despite `quiet`): the kernel writes a message to
/// the console whole, whereas bytes still queued on /dev/ttyS0 are discarded when agetty
/// starts there (it flushes the line), which can happen a few seconds after multi-user.
const READY_SCRIPT: &str = r#"#!/bin/sh
# Carapace's benchmark (tests/benches/images) reads these lines on the serial console.
read -r up _ < /proc/uptime
echo "<3>baseline: ready uptime_ms=$(( ${up%.*} * 1000 + (1${up#*.} - 100) * 10 ))" > /dev/kmsg
rss() {
    { while read -r key value _; do
        if [ "$key" = VmRSS: ]; then echo "$value"; return; fi
    done < "$1"; } 2>/dev/null
    echo 0
}
# Sets $total (not printed: a $(...) subshell would count itself).
sum_rss() {
    total=0
    for status in /proc/[0-9]*/status; do
        pid=${status#/proc/}
        [ "${pid%/status}" = "$$" ] && continue
        total=$(( total + $(rss "$status") ))
    done
}
sleep 3
sum_rss
echo "<3>baseline: idle rss pid1_kib=$(rss /proc/1/status) total_kib=$total" > /dev/kmsg
waited=3
while [ $waited -lt 60 ] && grep -qsx '(udev-worker)' /proc/[0-9]*/comm; do
    sleep 1
    waited=$((waited + 1))
done
sum_rss
echo "<3>baseline: settled rss pid1_kib=$(rss /proc/1/status) total_kib=$total after_s=$waited" > /dev/kmsg
"#;

const READY_UNIT: &str = "[Unit]\n\
Description=Report readiness and idle memory to Carapace's benchmark\n\
After=multi-user.target\n\
\n\
[Service]\n\
Type=oneshot\n\
ExecStart=/usr/local/sbin/bench-ready\n\
TimeoutStartSec=5min\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n";

/// One line for the report.
pub fn description() -> String {
    format!(
        "Debian {SUITE}, `debootstrap --variant={VARIANT} --include={INCLUDE}`, apt caches emptied, \
         the same kernel modules as Carapace's root; ext4 root, mounted by a busybox initramfs"
    )
}

/// debootstrap's tree for SUITE, made once and kept under `<cache>/bench/` (a rerun with the
/// same suite, variant and package list reuses it).
pub fn bootstrapped(cache: &Path) -> Result<PathBuf> {
    let dir = cache
        .join("bench")
        .join(format!("debian-{SUITE}-{VARIANT}"));
    let rootfs = dir.join("rootfs");
    let stamp = dir.join("debootstrap.args");
    let args = vec![
        format!("--variant={VARIANT}"),
        format!("--include={INCLUDE}"),
        SUITE.to_string(),
        String::new(), // the target directory, filled in below
        carapace_image::apt::MIRROR.to_string(),
    ];
    let key = format!("{} {} {} {}", args[0], args[1], args[2], args[4]);
    if rootfs.is_dir() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        return Ok(rootfs);
    }
    ensure_debootstrap()?;
    let partial = dir.join("rootfs.partial");
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&rootfs);
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    eprintln!(
        "bench: debootstrap {key} (once; kept in {})",
        rootfs.display()
    );
    let mut args = args;
    args[3] = partial.display().to_string();
    tools::output(Command::new("debootstrap").args(&args)).map_err(|e| {
        fail(format!(
            "debootstrap of Debian {SUITE} failed ({e}); its log is {}/debootstrap/debootstrap.log",
            partial.display()
        ))
    })?;
    std::fs::rename(&partial, &rootfs)
        .context(|| format!("rename {} to {}", partial.display(), rootfs.display()))?;
    std::fs::write(&stamp, key).context(|| format!("write {}", stamp.display()))?;
    Ok(rootfs)
}

/// debootstrap is a Debian package of the host (scripts/deps.sh installs it); the bench runs
/// as root, so it installs it itself when missing.
fn ensure_debootstrap() -> Result<()> {
    if tools::require("debootstrap", "debootstrap").is_ok() {
        return Ok(());
    }
    if !running_as_root() {
        return Err(fail(
            "debootstrap is missing and the bench is not root: install it (`sudo apt-get install debootstrap`, \
             or `make deps`), then run the bench as root (debootstrap and chroot need it)",
        ));
    }
    eprintln!("bench: installing the Debian package debootstrap on this machine");
    tools::output(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "debootstrap",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context(|| "install debootstrap (try `apt-get update` first, or `make deps`)".into())?;
    Ok(())
}

pub fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Copies the cached tree to `staged` (so the cache stays debootstrap's own) and sets it up.
/// `modules` go to /usr/lib/modules/<release>, where udev finds them through depmod's index.
pub fn stage(
    bootstrapped: &Path,
    staged: &Path,
    kernel_package: &Path,
    release: &str,
    modules: &[ModuleFile],
) -> Result<()> {
    let _ = std::fs::remove_dir_all(staged);
    // cp -a keeps owners, modes, hard links, xattrs and device nodes, which std::fs does not.
    tools::output(Command::new("cp").arg("-a").arg(bootstrapped).arg(staged))
        .context(|| format!("copy {} to {}", bootstrapped.display(), staged.display()))?;
    let put = |rel: &str, text: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = staged.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(&path, text).context(|| format!("write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .context(|| format!("chmod {}", path.display()))
    };

    // What an image builder sets: debootstrap copies the build host's name and resolver.
    put("etc/hostname", &format!("{HOSTNAME}\n"), 0o644)?;
    put(
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        ),
        0o644,
    )?;
    put(
        "etc/fstab",
        "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vda2 / ext4 errors=remount-ro 0 1\n",
        0o644,
    )?;
    let _ = std::fs::remove_file(staged.join("etc/resolv.conf"));
    // root keeps debootstrap's locked password ('*'): no password-less console. The
    // machine-id debootstrap wrote stays too: with an empty one, systemd's first-boot wizard
    // (systemd-firstboot, enabled in Debian) would stop at a prompt on the console.

    put("usr/local/sbin/bench-ready", READY_SCRIPT, 0o755)?;
    put("etc/systemd/system/bench-ready.service", READY_UNIT, 0o644)?;
    let wants = staged.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).context(|| format!("create {}", wants.display()))?;
    std::os::unix::fs::symlink("../bench-ready.service", wants.join("bench-ready.service"))
        .context(|| "enable bench-ready.service".into())?;

    install_modules(staged, kernel_package, release, modules)?;
    empty_apt_caches(staged)
}

fn install_modules(
    staged: &Path,
    kernel_package: &Path,
    release: &str,
    modules: &[ModuleFile],
) -> Result<()> {
    let dest = staged.join("usr/lib/modules").join(release);
    let _ = std::fs::remove_dir_all(&dest);
    for m in modules {
        let path = dest.join(&m.rel_path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(&path, &m.data).context(|| format!("write {}", path.display()))?;
    }
    // modprobe needs to know what is built in; depmod writes the rest (aliases for udev).
    let packaged = kernel_package.join("usr/lib/modules").join(release);
    for name in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if packaged.join(name).exists() {
            std::fs::copy(packaged.join(name), dest.join(name))
                .context(|| format!("copy {name}"))?;
        }
    }
    tools::output(
        Command::new("chroot")
            .arg(staged)
            .args(["/usr/sbin/depmod", "-a", release]),
    )
    .context(|| {
        format!(
            "run depmod inside {} (the Debian package kmod is in the root)",
            staged.display()
        )
    })?;
    Ok(())
}

/// As Debian's own container images do: no downloaded .debs, no package lists (apt update
/// fetches them again), no apt binary caches.
fn empty_apt_caches(staged: &Path) -> Result<()> {
    for dir in [
        "var/cache/apt/archives",
        "var/cache/apt",
        "var/lib/apt/lists",
    ] {
        let dir = staged.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // Sub-directories (partial/) and apt's lock files stay, as `apt-get clean` leaves them.
            if entry.file_name() == "lock" || entry.path().is_dir() {
                continue;
            }
            std::fs::remove_file(entry.path())
                .context(|| format!("remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Packs `staged` into an ext4 image at `out` with the host's mke2fs, sized to the content
/// plus 30 % (room for logs, the journal and first-boot files).
pub fn make_ext4(staged: &Path, out: &Path) -> Result<u64> {
    tools::require("mke2fs", "e2fsprogs").map_err(|e| fail(e.to_string()))?;
    let content = tree_bytes(staged)?;
    let size = (content * 13 / 10).div_ceil(1 << 20) << 20;
    let _ = std::fs::remove_file(out);
    let file = std::fs::File::create(out).context(|| format!("create {}", out.display()))?;
    file.set_len(size)
        .context(|| format!("size {}", out.display()))?;
    drop(file);
    // `-T default`: under 512 MiB mke2fs.conf would pick the "small" type (1 KiB blocks, an
    // inode per 4 KiB); a Debian install on any real disk gets 4 KiB blocks.
    tools::output(
        Command::new("mke2fs")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-T",
                "default",
                "-L",
                "debian-root",
                "-d",
            ])
            .arg(staged)
            .arg(out),
    )
    .context(|| {
        format!(
            "make the baseline's ext4 root ({} MiB for {} MiB of files)",
            size >> 20,
            content >> 20
        )
    })?;
    Ok(size)
}

/// Bytes the tree needs on a 4 KiB-block file system: each file rounded up to a block (hard
/// links once), a block per directory.
fn tree_bytes(root: &Path) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        total += 4096;
        for entry in std::fs::read_dir(&dir).context(|| format!("read {}", dir.display()))? {
            let entry = entry.context(|| format!("read {}", dir.display()))?;
            let meta = entry
                .metadata()
                .context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len().div_ceil(4096) * 4096;
            }
        }
    }
    Ok(total)
}
