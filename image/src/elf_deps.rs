//! Finds what a dynamically linked program from a Debian package needs at run time: its ELF
//! interpreter and the transitive closure of its DT_NEEDED libraries, looked up in the
//! recipe's packages. A library that no package ships is an error naming it.

use std::path::{Path, PathBuf};

use object::read::elf::{Dyn, ElfFile64, ProgramHeader};

use crate::error::{Error, Result};
use crate::packages::{Package, PackageSet};

/// A file to copy into the root: its path in the image and where its bytes are.
#[derive(Debug, Clone)]
pub struct RuntimeFile {
    pub image_path: String,
    pub source: PathBuf,
    pub package: Package,
}

pub struct ElfInfo {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// DT_RUNPATH (or the older DT_RPATH): folders searched before the default ones
    /// (libpulse finds its libpulsecommon in /usr/lib/<multiarch>/pulseaudio this way).
    pub runpath: Vec<String>,
}

pub fn read_elf(data: &[u8]) -> std::result::Result<ElfInfo, String> {
    let elf = ElfFile64::<object::Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF: {e}"))?;
    let endian = elf.endian();
    let mut interpreter = None;
    for header in elf.elf_program_headers() {
        if let Ok(Some(bytes)) = header.interpreter(endian, data) {
            interpreter = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    let mut needed = Vec::new();
    let mut runpath = Vec::new();
    let sections = elf.elf_section_table();
    if let Some((dynamic, link)) = sections.dynamic(endian, data).map_err(|e| e.to_string())? {
        let strings = sections
            .strings(endian, data, link)
            .map_err(|e| e.to_string())?;
        for entry in dynamic {
            let tag = entry.tag32(endian);
            if tag == Some(object::elf::DT_NEEDED) {
                let name = entry.string(endian, strings).map_err(|e| e.to_string())?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            } else if tag == Some(object::elf::DT_RUNPATH) || tag == Some(object::elf::DT_RPATH) {
                let dirs = entry.string(endian, strings).map_err(|e| e.to_string())?;
                runpath.extend(
                    String::from_utf8_lossy(dirs)
                        .split(':')
                        .filter(|dir| !dir.is_empty())
                        .map(str::to_string),
                );
            }
        }
    }
    Ok(ElfInfo {
        interpreter,
        needed,
        runpath,
    })
}

/// The program itself, its interpreter and every library it loads.
pub fn runtime_closure(
    program: &str,
    packages: &PackageSet,
    multiarch: &str,
) -> Result<Vec<RuntimeFile>> {
    let rel = program.trim_start_matches('/');
    let (path, package) = packages.find(rel).ok_or_else(|| {
        Error::Package(format!(
            "no package of the recipe ships {program}; add the package that does"
        ))
    })?;
    let source = resolve(&path, &package.root)?;
    let mut files = vec![RuntimeFile {
        image_path: program.into(),
        source: source.clone(),
        package: package.clone(),
    }];
    files.extend(libraries_of(program, &source, packages, multiarch)?);
    Ok(files)
}

/// The interpreter and every library that the ELF file at `elf` (`name` in errors) loads,
/// transitively, from the recipe's packages. Not the file itself, and not the libraries shipped
/// in the same folder with it (ONNX Runtime's OpenVINO build: each is such a file itself, whose
/// own libraries the caller asks for).
pub fn libraries_of(
    name: &str,
    elf: &Path,
    packages: &PackageSet,
    multiarch: &str,
) -> Result<Vec<RuntimeFile>> {
    let mut files: Vec<RuntimeFile> = Vec::new();
    let beside = (parent_of(name), elf.parent().map(Path::to_path_buf));
    let shipped_beside = |image_path: &str| {
        let (folder, dir) = &beside;
        let file = Path::new(image_path).file_name();
        parent_of(image_path) == *folder
            && file
                .zip(dir.as_ref())
                .is_some_and(|(file, dir)| dir.join(file).is_file())
    };
    // Each ELF file with the folder it has in the image ($ORIGIN in its run path).
    let mut queue = vec![(elf.to_path_buf(), parent_of(name))];
    while let Some((elf_path, origin)) = queue.pop() {
        let data = std::fs::read(&elf_path)
            .map_err(|e| Error::Package(format!("read {}: {e}", elf_path.display())))?;
        let info =
            read_elf(&data).map_err(|e| Error::Package(format!("{}: {e}", elf_path.display())))?;
        let runpath: Vec<String> = info
            .runpath
            .iter()
            .map(|dir| {
                dir.replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin)
            })
            .collect();
        let mut wanted: Vec<Vec<String>> = info.interpreter.into_iter().map(|i| vec![i]).collect();
        for soname in info.needed {
            // The run path's folders first, as the loader searches them.
            let mut places: Vec<String> = runpath
                .iter()
                .map(|dir| format!("{dir}/{soname}"))
                .collect();
            places.push(format!("/usr/lib/{multiarch}/{soname}"));
            wanted.push(places);
        }
        for places in wanted {
            if files.iter().any(|f| places.contains(&f.image_path))
                || places.iter().any(|p| shipped_beside(p))
            {
                continue;
            }
            let found = places.iter().find_map(|image_path| {
                find_library(image_path, packages, multiarch)
                    .map(|(found, package)| (image_path.clone(), found, package))
            });
            let (image_path, found, package) = found.ok_or_else(|| {
                Error::Package(format!(
                    "{name} needs {}, which none of the recipe's packages ships; add the Debian \
                     package that has it to [debian].packages",
                    places.last().map_or("", String::as_str)
                ))
            })?;
            let source = resolve(&found, &package.root)?;
            queue.push((source.clone(), parent_of(&image_path)));
            files.push(RuntimeFile {
                image_path,
                source,
                package: package.clone(),
            });
        }
    }
    Ok(files)
}

fn parent_of(image_path: &str) -> String {
    Path::new(image_path)
        .parent()
        .map_or_else(|| "/".to_string(), |dir| dir.display().to_string())
}

/// Debian is merged-/usr: a library may be packaged under /lib or /usr/lib, and the loader's
/// own folders stand for each other. A place outside them (a run path's `$ORIGIN` folder) is
/// taken only as it is, so a Debian library is never copied into another program's folder.
fn find_library<'a>(
    image_path: &str,
    packages: &'a PackageSet,
    multiarch: &str,
) -> Option<(PathBuf, &'a Package)> {
    let rel = image_path.trim_start_matches('/');
    let file = Path::new(rel).file_name()?.to_string_lossy().into_owned();
    let folder = Path::new(rel).parent()?.to_string_lossy().into_owned();
    let loader_folders = [
        "lib".to_string(),
        "usr/lib".to_string(),
        "lib64".to_string(),
        "usr/lib64".to_string(),
        format!("lib/{multiarch}"),
        format!("usr/lib/{multiarch}"),
    ];
    let mut candidates = vec![
        rel.to_string(),
        format!("usr/{rel}"),
        rel.trim_start_matches("usr/").to_string(),
    ];
    if loader_folders.contains(&folder) {
        candidates.push(format!("usr/lib/{multiarch}/{file}"));
        candidates.push(format!("lib/{multiarch}/{file}"));
    }
    candidates.iter().find_map(|c| packages.find(c))
}

/// Follows symlinks inside a package tree (absolute targets are relative to the tree).
pub(crate) fn resolve(path: &Path, root: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&current)
            .map_err(|e| Error::Package(format!("{}: {e}", current.display())))?;
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        let target = std::fs::read_link(&current).map_err(|e| Error::Package(e.to_string()))?;
        current = if target.is_absolute() {
            root.join(target.strip_prefix("/").unwrap_or(&target))
        } else {
            current.parent().unwrap_or(root).join(target)
        };
    }
    Err(Error::Package(format!(
        "symlink loop at {}",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_interpreter_and_needed_libraries_of_a_host_program() {
        let data = std::fs::read("/usr/bin/env").unwrap();
        let info = super::read_elf(&data).unwrap();
        assert!(info.interpreter.unwrap().contains("ld-linux"));
        assert!(info.needed.iter().any(|n| n.starts_with("libc.so")));
    }

    /// libpulse (which espeak-ng's audio library loads; `make deps` installs espeak-ng) finds
    /// libpulsecommon through its run path.
    #[test]
    fn reads_the_run_path_of_a_host_library() {
        let arch = if cfg!(target_arch = "aarch64") {
            "aarch64-linux-gnu"
        } else {
            "x86_64-linux-gnu"
        };
        let data = std::fs::read(format!("/usr/lib/{arch}/libpulse.so.0")).unwrap();
        let info = super::read_elf(&data).unwrap();
        assert_eq!(info.runpath, [format!("/usr/lib/{arch}/pulseaudio")]);
        assert!(
            info.needed.iter().any(|n| n.starts_with("libpulsecommon-")),
            "{:?}",
            info.needed
        );
    }
}
