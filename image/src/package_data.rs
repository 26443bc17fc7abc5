//! The recipe's `[debian] data`: files the programs read that are not libraries (espeak-ng's
//! phoneme tables and dictionaries, the firmware a driver loads), copied out of the recipe's
//! packages. A folder brings everything below it, and a last component with one `*`
//! (`/usr/lib/firmware/iwlwifi-*`) every entry of its folder that matches, all in name order
//! so the image's bytes do not depend on the directory's.

use std::path::Path;

use crate::elf_deps::{RuntimeFile, resolve};
use crate::error::{Error, Result};
use crate::packages::{Package, PackageSet};
use crate::recipe::DataEntry;

/// Every file under the recipe's data paths, with the package it came from.
pub fn data_files(entries: &[DataEntry], packages: &PackageSet) -> Result<Vec<RuntimeFile>> {
    let mut files = Vec::new();
    for entry in entries {
        let (wanted, image_path) = match entry {
            DataEntry::Path(path) => (path, path),
            DataEntry::Renamed { from, to } => (from, to),
        };
        let rel = wanted.trim_start_matches('/');
        if let Some((dir, pattern)) = rel.rsplit_once('/').filter(|(_, last)| last.contains('*')) {
            if wanted != image_path {
                return Err(Error::Package(format!(
                    "[debian] data {{ from = {wanted:?} }}: a renamed entry is one file, \
                     without '*'"
                )));
            }
            let matched = matching(packages, dir, pattern);
            if matched.is_empty() {
                return Err(Error::Package(format!(
                    "[debian] data {wanted}: nothing in the recipe's packages matches; add the \
                     package that ships it to [debian].packages"
                )));
            }
            for (name, path, package) in matched {
                collect(&format!("/{dir}/{name}"), &path, package, &mut files)?;
            }
            continue;
        }
        let (path, package) = packages.find(rel).ok_or_else(|| {
            Error::Package(format!(
                "[debian] data {wanted}: none of the recipe's packages ships it; add the \
                 package that does to [debian].packages"
            ))
        })?;
        let image_path = format!("/{}", image_path.trim_start_matches('/'));
        collect(&image_path, &path, package, &mut files)?;
    }
    Ok(files)
}

/// The entries of `dir` in every package whose names match `pattern` (one `*`), by name.
fn matching<'a>(
    packages: &'a PackageSet,
    dir: &str,
    pattern: &str,
) -> Vec<(String, std::path::PathBuf, &'a Package)> {
    let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
    let mut found: Vec<(String, std::path::PathBuf, &Package)> = Vec::new();
    for package in &packages.packages {
        let Ok(entries) = std::fs::read_dir(package.root.join(dir)) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let fits = name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix);
            if fits && !found.iter().any(|(n, _, _)| *n == name) {
                found.push((name, entry.path(), package));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn collect(
    image_path: &str,
    path: &Path,
    package: &Package,
    files: &mut Vec<RuntimeFile>,
) -> Result<()> {
    let source = resolve(path, &package.root)?;
    if source.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&source)
            .map_err(|e| Error::Package(format!("list {}: {e}", source.display())))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            collect(
                &format!("{image_path}/{name}"),
                &source.join(&name),
                package,
                files,
            )?;
        }
    } else {
        files.push(RuntimeFile {
            image_path: image_path.to_string(),
            source,
            package: package.clone(),
        });
    }
    Ok(())
}
