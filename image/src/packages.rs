//! Resolves, downloads, verifies and unpacks the Debian packages an image takes files from.
//! Downloads and unpacked trees are cached by name and version under the build cache.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::apt::{Apt, IndexEntry, deb_file_name};
use crate::board::Board;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::sha256_file;
use crate::lock::{Lock, LockedPackage};
use crate::recipe::Recipe;

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The unpacked data.tar of the .deb.
    pub root: PathBuf,
}

#[derive(Debug)]
pub struct PackageSet {
    pub packages: Vec<Package>,
    pub lock: Lock,
}

impl PackageSet {
    /// The package whose tree has `rel` (e.g. "usr/sbin/mke2fs"), first match wins.
    pub fn find(&self, rel: &str) -> Option<(PathBuf, &Package)> {
        self.packages.iter().find_map(|p| {
            let path = p.root.join(rel);
            path.symlink_metadata().ok().map(|_| (path, p))
        })
    }

    pub fn named_prefix(&self, prefix: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name.starts_with(prefix))
    }
}

pub fn requested_packages(board: &Board, recipe: &Recipe) -> Vec<String> {
    let mut names = vec![
        board.kernel_metapackage.to_string(),
        board.bootloader_package.to_string(),
    ];
    for name in &recipe.debian.packages {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

pub fn fetch(
    recipe_path: &Path,
    recipe: &Recipe,
    board: &Board,
    cache: &Path,
) -> Result<PackageSet> {
    let lock_path = Recipe::lock_path(recipe_path);
    let requested = requested_packages(board, recipe);
    let suite = &recipe.debian.suite;
    let mut apt = Apt::new(cache, suite, board.debian_arch)?;

    let lock = match Lock::read(&lock_path)? {
        Some(lock) if lock.covers(suite, board.debian_arch, &requested) => lock,
        stale => {
            if stale.is_some() {
                eprintln!(
                    "carapace: the recipe's package list changed; resolving {} again",
                    lock_path.display()
                );
            }
            let lock = resolve(&mut apt, board, suite, &requested)?;
            lock.write(&lock_path)?;
            eprintln!(
                "carapace: pinned {} packages in {}",
                lock.packages.len(),
                lock_path.display()
            );
            lock
        }
    };

    let mut packages = Vec::new();
    for pinned in &lock.packages {
        let deb = download_verified(&mut apt, pinned, &cache.join("debs"), &lock_path)?;
        let root = unpack(
            &deb,
            &cache
                .join("unpacked")
                .join(format!("{}_{}", pinned.name, pinned.version)),
        )?;
        packages.push(Package {
            name: pinned.name.clone(),
            version: pinned.version.clone(),
            root,
        });
    }
    Ok(PackageSet { packages, lock })
}

fn resolve(apt: &mut Apt, board: &Board, suite: &str, requested: &[String]) -> Result<Lock> {
    let mut packages = Vec::new();
    for name in requested {
        let mut entry = apt.lookup(name, None)?;
        if name == board.kernel_metapackage {
            entry = kernel_behind_metapackage(apt, &entry)?;
        }
        packages.push(LockedPackage {
            requested: name.clone(),
            name: entry.name,
            version: entry.version,
            architecture: entry.architecture,
            sha256: entry.sha256,
        });
    }
    Ok(Lock {
        suite: suite.into(),
        architecture: board.debian_arch.into(),
        packages,
    })
}

fn kernel_behind_metapackage(apt: &mut Apt, meta: &IndexEntry) -> Result<IndexEntry> {
    let image = meta
        .depends
        .split(',')
        .map(|d| d.trim().split([' ', '(']).next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| {
            Error::Package(format!("{} depends on no linux-image package", meta.name))
        })?;
    apt.lookup(image, None)
}

fn download_verified(
    apt: &mut Apt,
    pinned: &LockedPackage,
    dir: &Path,
    lock_path: &Path,
) -> Result<PathBuf> {
    let file = dir.join(deb_file_name(
        &pinned.name,
        &pinned.version,
        &pinned.architecture,
    ));
    if file.exists() && sha256_file(&file)? == pinned.sha256 {
        return Ok(file);
    }
    let entry = IndexEntry {
        name: pinned.name.clone(),
        version: pinned.version.clone(),
        architecture: pinned.architecture.clone(),
        sha256: pinned.sha256.clone(),
        depends: String::new(),
    };
    let downloaded = apt.download(&entry, dir).map_err(|e| {
        Error::Package(format!(
            "cannot fetch {}={} pinned in {} ({e}); if the archive dropped that version, delete \
             the lock file to move to the current one",
            pinned.name,
            pinned.version,
            lock_path.display()
        ))
    })?;
    let actual = sha256_file(&downloaded)?;
    if actual != pinned.sha256 {
        let _ = std::fs::remove_file(&downloaded);
        return Err(Error::Package(format!(
            "{} has sha256 {actual}, but the lock pins {}",
            downloaded.display(),
            pinned.sha256
        )));
    }
    Ok(downloaded)
}

/// Unpacks the data.tar.* member of a .deb into `dest` (once; a marker says it is complete).
fn unpack(deb: &Path, dest: &Path) -> Result<PathBuf> {
    let marker = dest.join(".carapace-unpacked");
    if marker.exists() {
        return Ok(dest.to_path_buf());
    }
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).context(|| format!("create {}", tmp.display()))?;

    let file = std::fs::File::open(deb).context(|| format!("open {}", deb.display()))?;
    let mut archive = ar::Archive::new(file);
    let mut found = false;
    while let Some(entry) = archive.next_entry() {
        let entry = entry.context(|| format!("read {}", deb.display()))?;
        let member = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let reader: Box<dyn Read> = match member.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
            "data.tar.zst" => Box::new(
                zstd::stream::read::Decoder::new(entry)
                    .context(|| format!("zstd in {}", deb.display()))?,
            ),
            "data.tar" => Box::new(entry),
            _ => continue,
        };
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        tar.unpack(&tmp)
            .context(|| format!("unpack {}", deb.display()))?;
        found = true;
        break;
    }
    if !found {
        return Err(Error::Package(format!(
            "{} has no data.tar.{{xz,zst}} member",
            deb.display()
        )));
    }
    std::fs::write(tmp.join(".carapace-unpacked"), b"").context(|| "write unpack marker".into())?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).context(|| format!("rename to {}", dest.display()))?;
    Ok(dest.to_path_buf())
}
