//! A FAT partition inside a disk image, opened in place: the owner's settings on p1 at flash
//! time, and the boot files the Pi firmware's stand-in reads in QEMU.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// The FAT file system of partition `number` (1-based, as the GPT numbers it) of the image
/// in `disk`, `image_len` bytes long.
pub fn open(
    disk: &File,
    image_len: u64,
    number: u32,
) -> std::result::Result<fatfs::FileSystem<Window>, String> {
    let table = board_support::gpt::read_table(disk, 512, image_len / 512)
        .map_err(|e| format!("reading its GPT: {e}"))?;
    let entry = table
        .entries
        .iter()
        .find(|entry| entry.number == number)
        .ok_or_else(|| format!("its GPT has no partition {number}"))?;
    let window = Window {
        file: disk.try_clone().map_err(|e| e.to_string())?,
        start: entry.first_lba * 512,
        length: (entry.last_lba + 1 - entry.first_lba) * 512,
        position: 0,
    };
    fatfs::FileSystem::new(window, fatfs::FsOptions::new())
        .map_err(|e| format!("partition {number} ({}): {e}", entry.name))
}

/// A partition of a disk image as a stream of its own.
pub struct Window {
    file: File,
    start: u64,
    length: u64,
    position: u64,
}

impl Window {
    fn room(&self, wanted: usize) -> usize {
        wanted.min(self.length.saturating_sub(self.position) as usize)
    }
}

impl Read for Window {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buffer.len());
        self.file
            .seek(SeekFrom::Start(self.start + self.position))?;
        let read = self.file.read(&mut buffer[..n])?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Write for Window {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let n = self.room(buffer.len());
        if n == 0 && !buffer.is_empty() {
            return Err(io::Error::other("write past the end of the partition"));
        }
        self.file
            .seek(SeekFrom::Start(self.start + self.position))?;
        let written = self.file.write(&buffer[..n])?;
        self.position += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => offset as i128,
            SeekFrom::End(delta) => self.length as i128 + delta as i128,
            SeekFrom::Current(delta) => self.position as i128 + delta as i128,
        };
        if target < 0 || target > self.length as i128 {
            return Err(io::Error::other("seek outside the partition"));
        }
        self.position = target as u64;
        Ok(self.position)
    }
}
