//! `datarate`: /data's throughput as a service sees it (for `make bench`: plain ext4 against
//! ext4 on dm-crypt): 64 MiB written in 1 MiB blocks and fsynced, then, with the file's pages
//! dropped from the page cache, read back. Prints `datarate write_mib_s=<n> read_mib_s=<n>`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

const FILE_NAME: &str = "datarate";
const BLOCK: usize = 1 << 20;
const BLOCKS: usize = 64;

pub fn run() {
    let Some(dir) = std::env::var_os("STATE_DIRECTORY") else {
        return println!("datarate error=STATE_DIRECTORY is not set");
    };
    match measure(&Path::new(&dir).join(FILE_NAME)) {
        Ok((write, read)) => println!("datarate write_mib_s={write:.1} read_mib_s={read:.1}"),
        Err(err) => println!("datarate error={err}"),
    }
}

fn measure(path: &Path) -> io::Result<(f64, f64)> {
    // Not zeros: nothing on the way may shortcut them.
    let block: Vec<u8> = (0..BLOCK).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut file = File::create(path)?;
    for _ in 0..BLOCKS {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let write = BLOCKS as f64 / started.elapsed().as_secs_f64();
    // Written back by the fsync, so the pages are clean and the kernel drops them.
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
    drop(file);
    let started = Instant::now();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; BLOCK];
    for _ in 0..BLOCKS {
        file.read_exact(&mut buf)?;
    }
    let read = BLOCKS as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok((write, read))
}
