//! The EFI system partition: FAT32 with systemd-boot, loader.conf, one entry per populated slot
//! (the builder populates slot A, committed) and that slot's kernel + initramfs. Written with
//! `fatfs` into memory; without
//! its `chrono` feature fatfs would stamp files with DOS date 0 (month 0, day 0), which UEFI's
//! FAT driver rejects when systemd-boot renames an entry to count a boot; so every file gets
//! one fixed, valid date instead, which also keeps the bytes reproducible.

use std::io::{Cursor, Write};

use board_support::Slot;
use board_support::boot_entry::{
    ENTRIES_DIR, EntryName, FIRST_GENERATION, render_entry, slot_boot_dir,
};

use crate::error::{Error, Result};

pub struct EspFile {
    /// Path inside the ESP, '/'-separated, no leading slash.
    pub path: String,
    pub data: Vec<u8>,
}

/// 2026-01-01 00:00:00, the image's fixed file date.
#[derive(Debug)]
struct FixedTime;
static FIXED_TIME: FixedTime = FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 2026,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

/// Slot A's boot files: its entry, committed and generation 1 (a fresh disk has no other slot
/// to fall back to, so a trial could only count itself down to "bad"; the update service's
/// first install gets generation 2 and boots first), and its kernel and initrd in its own
/// directory, where the entry points.
pub fn first_slot_files(
    version: &str,
    cmdline: &str,
    vmlinuz: Vec<u8>,
    initrd: Vec<u8>,
) -> [EspFile; 3] {
    let dir = slot_boot_dir(Slot::A);
    [
        EspFile {
            path: format!(
                "{ENTRIES_DIR}/{}",
                EntryName::committed(Slot::A).file_name()
            ),
            data: render_entry(Slot::A, FIRST_GENERATION, version, cmdline).into_bytes(),
        },
        EspFile {
            path: format!("{dir}/vmlinuz"),
            data: vmlinuz,
        },
        EspFile {
            path: format!("{dir}/initrd"),
            data: initrd,
        },
    ]
}

pub fn build_esp(size: u64, volume_id: u32, files: &[EspFile]) -> Result<Vec<u8>> {
    let format = FatFormat {
        what: "ESP",
        fat_type: Some(fatfs::FatType::Fat32),
        volume_id,
    };
    build_fat(size, &format, files, |path| {
        Error::DoesNotFit(format!(
            "{path} does not fit in the {} MiB ESP; raise disk.esp_mib",
            size / (1024 * 1024)
        ))
    })
}

/// How `build_fat` formats: `what` names the file system in errors; without a `fat_type`
/// fatfs picks one for the size (FAT16 from 4 MiB to 512 MiB).
pub struct FatFormat {
    pub what: &'static str,
    pub fat_type: Option<fatfs::FatType>,
    pub volume_id: u32,
}

/// A FAT file system of `size` bytes holding `files`, written in path order with the fixed
/// date: the same inputs give the same bytes. `full` makes the error for a file that does not
/// fit.
pub fn build_fat(
    size: u64,
    format: &FatFormat,
    files: &[EspFile],
    full: impl Fn(&str) -> Error,
) -> Result<Vec<u8>> {
    let what = format.what;
    let fat_err = |step: &str, e: std::io::Error| Error::image(format!("{what}: {step}: {e}"));
    let mut image = vec![0u8; size as usize];
    let mut options = fatfs::FormatVolumeOptions::new()
        .volume_id(format.volume_id)
        .volume_label(*b"CARAPACE   ");
    if let Some(fat_type) = format.fat_type {
        options = options.fat_type(fat_type);
    }
    fatfs::format_volume(Cursor::new(&mut image[..]), options).map_err(|e| fat_err("format", e))?;
    {
        let options = fatfs::FsOptions::new()
            .time_provider(&FIXED_TIME)
            .update_accessed_date(false);
        let fs = fatfs::FileSystem::new(Cursor::new(&mut image[..]), options)
            .map_err(|e| fat_err("open", e))?;
        let root = fs.root_dir();
        let mut sorted: Vec<&EspFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        for file in sorted {
            let mut dir_path = String::new();
            let parts: Vec<&str> = file.path.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                if !dir_path.is_empty() {
                    dir_path.push('/');
                }
                dir_path.push_str(part);
                if root.open_dir(&dir_path).is_err() {
                    root.create_dir(&dir_path)
                        .map_err(|e| fat_err(&dir_path, e))?;
                }
            }
            let mut f = root
                .create_file(&file.path)
                .map_err(|e| fat_err(&file.path, e))?;
            f.truncate().map_err(|e| fat_err(&file.path, e))?;
            f.write_all(&file.data).map_err(|e| {
                // fatfs says "no space" as an Other error; write_all as WriteZero.
                let no_room = e.kind() == std::io::ErrorKind::WriteZero
                    || e.to_string().to_lowercase().contains("space");
                if no_room {
                    full(&file.path)
                } else {
                    fat_err(&file.path, e)
                }
            })?;
        }
        drop(root);
        fs.unmount().map_err(|e| fat_err("unmount", e))?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_read_back_and_bytes_are_reproducible() {
        let files = vec![
            EspFile {
                path: "EFI/BOOT/BOOTX64.EFI".into(),
                data: vec![7; 5000],
            },
            EspFile {
                path: "loader/entries/carapace-a.conf".into(),
                data: b"title x\n".to_vec(),
            },
        ];
        let a = build_esp(40 * 1024 * 1024, 0x1234_5678, &files).unwrap();
        let b = build_esp(40 * 1024 * 1024, 0x1234_5678, &files).unwrap();
        assert!(a == b, "two builds of the same ESP differ");

        let fs = fatfs::FileSystem::new(Cursor::new(a), fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
        let mut data = Vec::new();
        fs.root_dir()
            .open_file("EFI/BOOT/BOOTX64.EFI")
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data, vec![7; 5000]);
    }

    #[test]
    fn the_first_slot_is_committed_as_generation_one_and_its_entry_points_at_its_files() {
        let [entry, vmlinuz, initrd] =
            first_slot_files("0.4.0", "quiet carapace.slot=a", vec![1], vec![2]);
        let name = entry.path.strip_prefix("loader/entries/").unwrap();
        assert_eq!(EntryName::parse(name), Some(EntryName::committed(Slot::A)));
        let body = String::from_utf8(entry.data).unwrap();
        assert_eq!(board_support::entry_generation(&body), Some(1));
        assert!(
            body.starts_with("title Carapace 0.4.0 (slot a)\n"),
            "{body}"
        );
        assert!(body.contains("\noptions quiet carapace.slot=a\n"), "{body}");
        for (line, file) in [("linux", &vmlinuz), ("initrd", &initrd)] {
            assert!(
                body.contains(&format!("\n{line} /{}\n", file.path)),
                "{line} in {body} is not {}",
                file.path
            );
        }
        assert_eq!((vmlinuz.data, initrd.data), (vec![1], vec![2]));
    }

    #[test]
    fn too_much_data_is_a_clear_error() {
        let files = vec![EspFile {
            path: "big".into(),
            data: vec![0; 50 * 1024 * 1024],
        }];
        // Only running out of room is this error; any other FAT failure must not pass.
        let err = build_esp(40 * 1024 * 1024, 1, &files).unwrap_err();
        assert!(matches!(err, Error::DoesNotFit(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("big does not fit") && text.contains("raise disk.esp_mib"),
            "{text}"
        );
    }
}
