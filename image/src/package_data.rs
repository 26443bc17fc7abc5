//! The recipe's `[debian] data`: files the programs read that are not libraries (espeak-ng's
//! phoneme tables and dictionaries), copied out of the recipe's packages. A folder brings
//! everything below it, in name order so the image's bytes do not depend on the directory's.

use std::path::Path;

use crate::elf_deps::{RuntimeFile, resolve};
use crate::error::{Error, Result};
use crate::packages::{Package, PackageSet};

/// Every file under the recipe's data paths, with the package it came from.
pub fn data_files(paths: &[String], packages: &PackageSet) -> Result<Vec<RuntimeFile>> {
    let mut files = Vec::new();
    for wanted in paths {
        let rel = wanted.trim_start_matches('/');
        let (path, package) = packages.find(rel).ok_or_else(|| {
            Error::Package(format!(
                "[debian] data {wanted}: none of the recipe's packages ships it; add the \
                 package that does to [debian].packages"
            ))
        })?;
        collect(&format!("/{rel}"), &path, package, &mut files)?;
    }
    Ok(files)
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
