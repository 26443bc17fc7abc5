//! A kernel-only update needs a second Debian kernel package. The builder's download cache
//! (files named by their sha256, checked on every use) keeps each kernel a build ever
//! fetched, so the lock's previous kernel is usually there; the Debian archive itself serves
//! only the newest. With none there, the bench says so and measures no kernel update.

use std::cmp::Ordering;
use std::path::Path;
use std::process::Command;

use carapace_image::lock::{Lock, LockedPackage};

use super::error::{Context, Result, fail};

/// The kernel pin of `lock` (the board's metapackage resolves to a linux-image-* package).
pub fn pinned<'a>(lock: &'a Lock, metapackage: &str) -> Result<&'a LockedPackage> {
    lock.packages
        .iter()
        .find(|p| p.requested == metapackage)
        .ok_or_else(|| fail(format!("the test recipe's lock pins no {metapackage}")))
}

/// Another build of the pinned kernel's flavour in the download cache: the newest one older
/// than the pin (the release a box would update from), else the newest other one.
pub fn find(cache: &Path, pin: &LockedPackage) -> Result<Option<LockedPackage>> {
    let debs = cache.join("debs");
    let Ok(listing) = std::fs::read_dir(&debs) else {
        return Ok(None);
    };
    let pinned_flavour = flavour(&pin.name);
    let mut found = Vec::new();
    for entry in listing {
        let path = entry.context(|| format!("list {}", debs.display()))?.path();
        let Some(sha256) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".deb"))
        else {
            continue;
        };
        if sha256 == pin.sha256 {
            continue;
        }
        let Some((name, version, architecture)) = control_fields(&path)? else {
            continue;
        };
        if name.starts_with("linux-image-")
            && flavour(&name) == pinned_flavour
            && (&name, &version) != (&pin.name, &pin.version)
        {
            found.push(LockedPackage {
                requested: pin.requested.clone(),
                name,
                version,
                architecture,
                // Recorded in the scratch lock, not checked: the cache serves a pin by its
                // sha256 before any suite is asked.
                suite: pin.suite.clone(),
                sha256: sha256.into(),
                seen: String::new(),
            });
        }
    }
    found.sort_by(|a, b| compare_versions(&a.version, &b.version));
    let older = found
        .iter()
        .rev()
        .find(|p| compare_versions(&p.version, &pin.version) == Ordering::Less);
    Ok(older.or(found.last()).cloned())
}

/// Whether `a` is an older build than `b`.
pub fn is_older(a: &LockedPackage, b: &LockedPackage) -> bool {
    compare_versions(&a.version, &b.version) == Ordering::Less
}

/// `lock` with its kernel pin replaced by `kernel`.
pub fn with_kernel(lock: &Lock, kernel: &LockedPackage) -> Lock {
    let mut lock = lock.clone();
    for pin in &mut lock.packages {
        if pin.requested == kernel.requested {
            *pin = kernel.clone();
        }
    }
    lock
}

/// "amd64" of "linux-image-6.12.118+deb13-amd64", "cloud-amd64" of "…-cloud-amd64": what
/// follows the release (the first '-' before a letter); "amd64-unsigned" for the unsigned
/// build and "" for the metapackage, which are not kernels to boot.
fn flavour(name: &str) -> &str {
    let release = name.trim_start_matches("linux-image-");
    release
        .char_indices()
        .find(|&(i, c)| c == '-' && release[i + 1..].starts_with(|n: char| n.is_ascii_alphabetic()))
        .map_or("", |(i, _)| &release[i + 1..])
}

/// Package, Version and Architecture of a .deb, from dpkg-deb; `None` for a file dpkg-deb
/// cannot read (a partial download).
fn control_fields(deb: &Path) -> Result<Option<(String, String, String)>> {
    let out = Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .args(["Package", "Version", "Architecture"])
        .output()
        .context(|| "run dpkg-deb (package dpkg)".into())?;
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    Ok(field("Package")
        .zip(field("Version"))
        .zip(field("Architecture"))
        .map(|((p, v), a)| (p, v, a)))
}

/// Debian versions as the kernel's use them ("6.12.107-1" < "6.12.118-1"): runs of digits
/// compared as numbers, everything else as text. Not dpkg's full rules (no epochs or ~),
/// which kernel builds of one Debian release do not need.
fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<(bool, String)> {
        let mut parts: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match parts.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => parts.push((digit, c.to_string())),
            }
        }
        parts
    };
    for (x, y) in parts(a).iter().zip(parts(b).iter()) {
        let order = match (x, y) {
            ((true, x), (true, y)) => x
                .trim_start_matches('0')
                .len()
                .cmp(&y.trim_start_matches('0').len())
                .then_with(|| x.trim_start_matches('0').cmp(y.trim_start_matches('0'))),
            ((_, x), (_, y)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    parts(a).len().cmp(&parts(b).len())
}

pub const CHECKS: &[(&str, fn())] = &[
    ("kernel versions compare by number", || {
        assert_eq!(compare_versions("6.12.107-1", "6.12.118-1"), Ordering::Less);
        assert_eq!(compare_versions("6.12.9-1", "6.12.10-1"), Ordering::Less);
        assert_eq!(
            compare_versions("6.12.10-2", "6.12.10-1"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("6.1.0-1", "6.1.0-1"), Ordering::Equal);
    }),
    ("a kernel's flavour is what follows its release", || {
        assert_eq!(flavour("linux-image-6.12.118+deb13-amd64"), "amd64");
        assert_eq!(
            flavour("linux-image-6.12.107+deb13-cloud-amd64"),
            "cloud-amd64"
        );
        assert_eq!(flavour("linux-image-6.1.0-28-amd64"), "amd64");
        assert_eq!(
            flavour("linux-image-6.12.107+deb13-amd64-unsigned"),
            "amd64-unsigned"
        );
        assert_eq!(flavour("linux-image-amd64"), "");
    }),
];
