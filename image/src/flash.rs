//! `carapace flash`: writes an image onto an SD card, a USB stick or a file, reads it back to
//! prove it landed, and puts the owner's settings on its ESP, where the box's first start
//! takes them (as `carapace build --owner-settings` does for an image file).
//!
//! The order keeps every failure harmless: the target is looked up and refused before it is
//! opened; a disk is opened exclusively (the kernel refuses while anything has it mounted or
//! claimed); a file is written beside its name and renamed into place only once verified.

mod copy;
mod progress;
pub mod settings;
mod source;
pub mod target;

use std::fs::File;
use std::path::{Path, PathBuf};

use carapace_owner::OwnerSettings;
use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use copy::Zeros;
use target::{Target, human};

pub struct FlashOptions<'a> {
    pub image: &'a Path,
    pub to: &'a Path,
    pub force: bool,
    pub settings: Option<&'a OwnerSettings>,
}

/// What was written.
#[derive(Debug)]
pub struct Flashed {
    pub length: u64,
    /// Bytes written; the rest were runs of zeros.
    pub data: u64,
    pub sha256: String,
}

pub fn flash(options: &FlashOptions) -> Result<Flashed> {
    let to = options.to;
    let failed = |message: String| Error::Flash {
        target: to.to_path_buf(),
        message,
    };
    let refused = |reason: String| Error::FlashRefused {
        target: to.to_path_buf(),
        reason,
    };
    let mut source = source::open(options.image).map_err(failed)?;
    let target = target::inspect(to).map_err(refused)?;
    if same_file(options.image, to) {
        return Err(refused("it is the image itself".into()));
    }
    if let Some(reason) = target::refusal(&target, source.length, options.force) {
        return Err(refused(reason));
    }
    eprintln!(
        "carapace: writing {} ({}{}) to {}",
        options.image.display(),
        human(source.length),
        if source.compressed { ", from zstd" } else { "" },
        to.display()
    );
    let (file, partial, zeros) = match &target {
        Target::File { path, .. } => {
            let partial = partial_path(path);
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&partial)
                .map_err(|e| failed(format!("cannot create {}: {e}", partial.display())))?;
            file.set_len(source.length)
                .map_err(|e| failed(format!("{}: {e}", partial.display())))?;
            (file, Some(partial), Zeros::AreHoles)
        }
        Target::Disk(disk) => (
            open_exclusive(&disk.path).map_err(refused)?,
            None,
            Zeros::Write,
        ),
    };
    let done = write_and_check(&mut source, &file, zeros, options.settings).map_err(failed);
    match (done, partial) {
        (Ok(flashed), None) => Ok(flashed),
        (Ok(flashed), Some(partial)) => {
            crate::fsutil::rename_durably(&partial, to)?;
            Ok(flashed)
        }
        (Err(e), partial) => {
            if let Some(partial) = partial {
                let _ = std::fs::remove_file(partial);
            }
            Err(e)
        }
    }
}

fn write_and_check(
    source: &mut source::Source,
    file: &File,
    zeros: Zeros,
    settings: Option<&OwnerSettings>,
) -> std::result::Result<Flashed, String> {
    let length = source.length;
    let copied = copy::copy(&mut source.reader, length, file, zeros)
        .map_err(|e| format!("writing the image: {e}"))?;
    let back = copy::read_back(file, length).map_err(|e| format!("reading it back: {e}"))?;
    if back != copied.sha256 {
        return Err(format!(
            "what was read back differs from the image (sha256 {} against {}): the disk may be \
             failing, or claim more space than it has; try another",
            hex::encode(back),
            hex::encode(copied.sha256)
        ));
    }
    eprintln!(
        "carapace: verified: read back {} with the image's sha256 {}",
        human(length),
        hex::encode(copied.sha256)
    );
    if let Some(settings) = settings {
        crate::owner::write_settings(file, length, settings)?;
        copy::drop_cache(file).map_err(|e| format!("syncing the settings: {e}"))?;
        let written = crate::owner::read_settings(file, length)?;
        if written.as_deref() != Some(settings.to_toml().as_str()) {
            return Err("the owner's settings read back differently from what was written".into());
        }
        eprintln!("carapace: the owner's settings are on the ESP");
    }
    Ok(Flashed {
        length,
        data: copied.data,
        sha256: hex::encode(copied.sha256),
    })
}

/// `NAME.partial` beside the file: renamed to NAME once the image in it is verified.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Opens a disk for writing, exclusively: Linux then refuses it while a file system is
/// mounted from it or another program holds it, even if that began after it was looked up.
fn open_exclusive(path: &Path) -> std::result::Result<File, String> {
    let flags = OFlags::RDWR | OFlags::EXCL | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        Err(rustix::io::Errno::BUSY) => Err(format!(
            "{} is busy: something has it mounted or open; unmount it and try again",
            path.display()
        )),
        Err(rustix::io::Errno::ACCESS) | Err(rustix::io::Errno::PERM) => Err(format!(
            "no permission to write {}; run carapace flash with sudo",
            path.display()
        )),
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}
