//! Kernel modules from the Debian kernel package: find them by name, follow the `depends=`
//! that modpost wrote into each module's .modinfo, decompress them (init loads plain .ko with
//! finit_module) and write a depmod-format modules.dep for just the chosen set.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use board_support::modules_dep::ModuleEntry;
use object::{Object, ObjectSection};

use crate::error::{Error, IoContext, Result};

pub struct KernelTree {
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `usr/lib/modules/<release>/dtb`, where Debian 7.x puts the device trees.
    dtb_dir: Option<PathBuf>,
    modules_dir: PathBuf,
    /// Normalised module name ('-' → '_') → path relative to modules_dir, as packaged.
    index: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
    /// Modules from outside the kernel's packages (a vendor's driver built for it), by name:
    /// their file, stored under `extra/` as depmod would.
    extra: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ModuleFile {
    pub name: String,
    /// Relative to /lib/modules/<release>/, uncompressed ("kernel/fs/erofs/erofs.ko").
    pub rel_path: String,
    pub data: Vec<u8>,
    pub depends: Vec<String>,
}

pub fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

impl KernelTree {
    /// A kernel whose package (or vendor tree) holds everything.
    pub fn open(package_root: &Path) -> Result<KernelTree> {
        KernelTree::open_parts(&[package_root])
    }

    /// A kernel spread over several unpacked packages, as Debian splits it since 7.x: the
    /// modules in one (`kernel/`, `updates/`), vmlinuz in another, modules.builtin and the
    /// device trees in a third, all under `usr/lib/modules/<release>/`. vmlinuz is also looked
    /// for at `boot/vmlinuz-<release>`, where a kernel in one package has it.
    pub fn open_parts(roots: &[&Path]) -> Result<KernelTree> {
        KernelTree::open_release(roots, None)
    }

    /// The same for the kernel `release` (the first found when `None`), with its modules under
    /// `usr/lib/modules/` or (before the /usr merge) `lib/modules/`, and its device trees
    /// under `usr/lib/modules/<release>/dtb/` or `usr/lib/linux-image-<release>/`, where
    /// Raspberry Pi's and older Debian packages put them.
    pub fn open_release(roots: &[&Path], release: Option<&str>) -> Result<KernelTree> {
        const MODULE_BASES: [&str; 2] = ["usr/lib/modules", "lib/modules"];
        let release_dirs = |release: &str| -> Vec<PathBuf> {
            roots
                .iter()
                .flat_map(|root| MODULE_BASES.map(|base| root.join(base).join(release)))
                .collect()
        };
        let found: Vec<String> = roots
            .iter()
            .flat_map(|root| MODULE_BASES.map(|base| root.join(base)))
            .filter_map(|base| std::fs::read_dir(base).ok())
            .flat_map(|entries| entries.filter_map(|e| e.ok()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let release = match release {
            Some(wanted) if found.iter().any(|r| r == wanted) => wanted.to_string(),
            Some(wanted) => {
                return Err(Error::Module(format!(
                    "no kernel {wanted} in {} (it holds {found:?})",
                    describe_roots(roots)
                )));
            }
            None => found.first().cloned().ok_or_else(|| {
                Error::Module(format!(
                    "no kernel release under usr/lib/modules in {}",
                    describe_roots(roots)
                ))
            })?,
        };
        let dirs = release_dirs(&release);
        let modules_dir = dirs
            .iter()
            .find(|d| d.join("kernel").is_dir())
            .cloned()
            .ok_or_else(|| {
                Error::Module(format!(
                    "no usr/lib/modules/{release}/kernel in {}",
                    describe_roots(roots)
                ))
            })?;
        let mut index = BTreeMap::new();
        walk(&modules_dir, &modules_dir.join("kernel"), &mut index)?;
        // Out-of-tree modules (a vendor's: NVIDIA's nvgpu) win over in-tree ones of the same
        // name, as depmod orders them.
        let updates = modules_dir.join("updates");
        if updates.is_dir() {
            walk(&modules_dir, &updates, &mut index)?;
        }
        let builtin = dirs
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join("modules.builtin")).ok())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .map(|f| normalise(f.trim_end_matches(".ko")))
            .collect();
        let vmlinuz = roots
            .iter()
            .map(|root| root.join("boot").join(format!("vmlinuz-{release}")))
            .chain(dirs.iter().map(|d| d.join("vmlinuz")))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::Module(format!(
                    "no vmlinuz of {release} (boot/vmlinuz-{release} or \
                     usr/lib/modules/{release}/vmlinuz) in {}",
                    describe_roots(roots)
                ))
            })?;
        let dtb_dir = dirs
            .iter()
            .map(|d| d.join("dtb"))
            .chain(
                roots
                    .iter()
                    .map(|root| root.join(format!("usr/lib/linux-image-{release}"))),
            )
            .find(|d| d.is_dir());
        Ok(KernelTree {
            release,
            vmlinuz,
            dtb_dir,
            modules_dir,
            index,
            builtin,
            extra: BTreeMap::new(),
        })
    }

    /// Adds a module built for this kernel from outside its packages; it wins over one of the
    /// same name, as `extra/` does for depmod. Returns its name.
    pub fn add_module(&mut self, path: &Path) -> String {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = normalise(
            file.trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".ko"),
        );
        self.extra.insert(name.clone(), path.to_path_buf());
        name
    }

    /// A module's uncompressed bytes; `None` when the kernel has no such module file.
    pub fn module_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let name = normalise(name);
        if let Some(path) = self.extra.get(&name) {
            return decompress(path).map(Some);
        }
        match self.index.get(&name) {
            Some(rel) => decompress(&self.modules_dir.join(rel)).map(Some),
            None => Ok(None),
        }
    }

    /// `usr/lib/modules/<release>` of the part that holds the modules.
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// The device tree overlays (Raspberry Pi's `overlays/`), if the kernel ships them.
    pub fn overlays_dir(&self) -> Option<PathBuf> {
        self.dtb_dir
            .as_ref()
            .map(|d| d.join("overlays"))
            .filter(|d| d.is_dir())
    }

    /// Every device tree file whose name starts with `prefix`, searched through the vendor
    /// folders, sorted by name.
    pub fn device_trees_named(&self, prefix: &str) -> Vec<PathBuf> {
        let Some(dir) = &self.dtb_dir else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = std::iter::once(dir.clone())
            .chain(
                std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            )
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".dtb"))
            })
            .collect();
        found.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
        found
    }

    /// The device tree `name` (a file name, e.g. "bcm2712-rpi-5-b.dtb") from the kernel's
    /// dtb directory, searched through its vendor folders.
    pub fn device_tree(&self, name: &str) -> Result<PathBuf> {
        let missing = || {
            Error::Module(format!(
                "kernel {} has no device tree {name}{}",
                self.release,
                match &self.dtb_dir {
                    Some(dir) => format!(" under {}", dir.display()),
                    None => " (it ships no dtb directory)".into(),
                }
            ))
        };
        let dir = self.dtb_dir.as_ref().ok_or_else(missing)?;
        let direct = dir.join(name);
        if direct.is_file() {
            return Ok(direct);
        }
        let vendors = std::fs::read_dir(dir).context(|| format!("read {}", dir.display()))?;
        vendors
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(name))
            .find(|p| p.is_file())
            .ok_or_else(missing)
    }

    /// The named modules and everything they depend on, dependencies first. Built-in
    /// modules need nothing; an unknown name is an error that says so.
    pub fn closure(&self, names: &[String]) -> Result<Vec<ModuleFile>> {
        let mut done: BTreeMap<String, ModuleFile> = BTreeMap::new();
        let mut order = Vec::new();
        for name in names {
            self.visit(&normalise(name), &mut done, &mut order, 0)?;
        }
        Ok(order.into_iter().filter_map(|n| done.remove(&n)).collect())
    }

    fn visit(
        &self,
        name: &str,
        done: &mut BTreeMap<String, ModuleFile>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        if done.contains_key(name)
            || (self.builtin.contains(name) && !self.extra.contains_key(name))
        {
            return Ok(());
        }
        if depth > 32 {
            return Err(Error::Module(format!("dependency loop through {name}")));
        }
        let (path, rel) = match (self.extra.get(name), self.index.get(name)) {
            (Some(path), _) => {
                let file = path.file_name().unwrap_or_default().to_string_lossy();
                (path.clone(), format!("extra/{file}"))
            }
            (None, Some(rel)) => (self.modules_dir.join(rel), rel.clone()),
            (None, None) => {
                return Err(Error::Module(format!(
                    "'{name}' is neither a module nor built into kernel {}",
                    self.release
                )));
            }
        };
        let data = decompress(&path)?;
        let depends = modinfo_depends(&data).map_err(|e| Error::Module(format!("{name}: {e}")))?;
        for dep in &depends {
            self.visit(&normalise(dep), done, order, depth + 1)?;
        }
        let rel_path = rel
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .to_string();
        done.insert(
            name.to_string(),
            ModuleFile {
                name: name.to_string(),
                rel_path,
                data,
                depends,
            },
        );
        order.push(name.to_string());
        Ok(())
    }
}

fn describe_roots(roots: &[&Path]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn walk(base: &Path, dir: &Path, index: &mut BTreeMap<String, String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).context(|| format!("read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("read {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            walk(base, &path, index)?;
            continue;
        }
        let file = entry.file_name().to_string_lossy().into_owned();
        let stem = file.trim_end_matches(".xz").trim_end_matches(".zst");
        if let Some(name) = stem.strip_suffix(".ko") {
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            index.insert(normalise(name), rel);
        }
    }
    Ok(())
}

fn decompress(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
    let mut data = Vec::new();
    let name = path.to_string_lossy();
    let read = if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(file).read_to_end(&mut data)
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(file).and_then(|mut d| d.read_to_end(&mut data))
    } else {
        let mut file = file;
        file.read_to_end(&mut data)
    };
    read.context(|| format!("decompress {}", path.display()))?;
    Ok(data)
}

/// The value of `key=` in a module's .modinfo section (`version`, `vermagic`), if it has one.
pub fn modinfo_field(module: &[u8], key: &str) -> std::result::Result<Option<String>, String> {
    let elf = object::File::parse(module).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    let prefix = format!("{key}=");
    Ok(data
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned()))
}

/// The `depends=` list of a module's .modinfo section.
pub fn modinfo_depends(module: &[u8]) -> std::result::Result<Vec<String>, String> {
    let elf = object::File::parse(module).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section.data().map_err(|e| e.to_string())?;
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

/// depmod's format: "<module path>: <dependency paths>", every transitive dependency listed.
pub fn modules_dep(files: &[ModuleFile]) -> String {
    let by_name: BTreeMap<&str, &ModuleFile> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let entries: Vec<ModuleEntry<'_>> = files
        .iter()
        .map(|file| {
            let mut needs: Vec<&str> = Vec::new();
            let mut stack: Vec<String> = file.depends.iter().map(|d| normalise(d)).collect();
            while let Some(dep) = stack.pop() {
                if let Some(m) = by_name.get(dep.as_str())
                    && !needs.contains(&m.rel_path.as_str())
                {
                    needs.push(&m.rel_path);
                    stack.extend(m.depends.iter().map(|d| normalise(d)));
                }
            }
            ModuleEntry {
                rel_path: &file.rel_path,
                needs,
            }
        })
        .collect();
    board_support::modules_dep::render(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, deps: &[&str]) -> ModuleFile {
        ModuleFile {
            name: name.into(),
            rel_path: format!("kernel/{name}.ko"),
            data: vec![],
            depends: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn modules_dep_lists_transitive_dependencies() {
        let files = vec![module("a", &[]), module("b", &["a"]), module("c", &["b"])];
        let dep = modules_dep(&files);
        assert!(dep.contains("kernel/a.ko:\n"), "{dep}");
        assert!(
            dep.contains("kernel/c.ko: kernel/b.ko kernel/a.ko\n"),
            "{dep}"
        );
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise("usb-storage"), "usb_storage");
    }

    #[test]
    fn non_elf_is_a_clear_error() {
        assert!(modinfo_depends(b"nope").unwrap_err().contains("ELF"));
    }
}
