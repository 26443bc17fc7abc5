//! The initramfs: PID 1's binary and exactly the modules that reach the root, as zstd'd cpio.

use std::collections::BTreeSet;

use crate::cpio::{CpioEntry, write_newc};
use crate::error::{Error, Result};
use crate::kmod::{ModuleFile, modules_dep};

pub const MARKER: &str = "initramfs-release";

pub struct Initramfs {
    pub compressed: Vec<u8>,
    /// (path, bytes) of every member file, for the SBOM.
    pub files: Vec<(String, Vec<u8>)>,
}

pub fn build(init: &[u8], release: &str, modules: &[ModuleFile], mtime: u32) -> Result<Initramfs> {
    let modules_root = format!("lib/modules/{release}");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("init".into(), init.to_vec()),
        (MARKER.into(), b"carapace initramfs\n".to_vec()),
        (
            format!("{modules_root}/modules.dep"),
            modules_dep(modules).into_bytes(),
        ),
    ];
    for m in modules {
        files.push((format!("{modules_root}/{}", m.rel_path), m.data.clone()));
    }
    let mut dirs: BTreeSet<String> = ["dev", "proc", "sys", "newroot"].map(String::from).into();
    for (path, _) in &files {
        let mut parent = std::path::Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    let mut entries: Vec<(String, CpioEntry<'_>)> = Vec::new();
    for dir in &dirs {
        entries.push((
            dir.clone(),
            CpioEntry::Dir {
                path: dir,
                mode: 0o755,
            },
        ));
    }
    for (path, data) in &files {
        let mode = if path == "init" { 0o755 } else { 0o644 };
        entries.push((path.clone(), CpioEntry::File { path, mode, data }));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let entries: Vec<CpioEntry<'_>> = entries.into_iter().map(|(_, e)| e).collect();
    let archive = write_newc(&entries, mtime);
    let compressed = zstd::bulk::compress(&archive, 19)
        .map_err(|e| Error::image(format!("compress the initramfs: {e}")))?;
    Ok(Initramfs { compressed, files })
}
