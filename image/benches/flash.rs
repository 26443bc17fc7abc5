//! `make bench`: `carapace flash` against what the README said before it existed,
//! `zstd -dc carapace.img.zst | dd of=DISK bs=4M conv=fsync`, writing the default image's
//! release form (carapace.img.zst) onto the same disk: a loop device over a file that holds
//! other bytes first, as a used card does. Time from start to exit, medians of several rounds,
//! as a ratio; carapace's time includes reading the whole image back from the disk, dd checks
//! nothing.
//!
//! carapace writes the image's data and has the kernel zero the rest; a loop device turns a
//! zeroed range into a hole in its file, as an SSD or eMMC with write-zeroes or discard does.
//! A card reader with neither gets the zeros written, as from dd.
//!
//! Environment: `CARAPACE_BENCH_ROUNDS` (default 3). Needs root (losetup).
//! This target has no libtest harness: `cargo bench` passes `--bench` and gets the benchmark.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const RECIPE: &str = "recipes/x86-64-qemu.toml";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the flash benchmark runs with `make bench`");
        return;
    }
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_path_buf();
    let rounds: usize = std::env::var("CARAPACE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    eprintln!("bench: building {RECIPE}");
    let built = carapace_image::build::build(&workspace.join(RECIPE), &workspace)
        .map_err(|e| format!("build {RECIPE}: {e}"))?;
    let length = std::fs::metadata(&built.image)
        .map_err(|e| e.to_string())?
        .len();
    let zst = built.image_zst.display().to_string();

    let mut carapace = Vec::new();
    let mut dd = Vec::new();
    for round in 1..=rounds {
        eprintln!("bench: round {round} of {rounds}");
        let disk = UsedDisk::new(length)?;
        carapace.push(disk.time(|device| {
            Command::new(env!("CARGO_BIN_EXE_carapace"))
                .args(["flash", "--image", &zst, "--to", device, "--force"])
                .stderr(Stdio::null())
                .status()
        })?);
        let disk = UsedDisk::new(length)?;
        dd.push(disk.time(|device| {
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "zstd -dc '{zst}' | dd of={device} bs=4M conv=fsync status=none"
                ))
                .status()
        })?);
    }
    let median = |mut seconds: Vec<f64>| {
        seconds.sort_by(f64::total_cmp);
        seconds[seconds.len() / 2]
    };
    let (c, d) = (median(carapace), median(dd));
    println!(
        "\nFlashing {} ({:.0} MiB raw) onto a loop device that held other bytes, medians of \
         {rounds} rounds:\n",
        built.image_zst.display(),
        length as f64 / (1 << 20) as f64
    );
    println!("| carapace flash (with its read-back) | zstd -dc \\| dd conv=fsync | ratio |");
    println!("|---|---|---|");
    println!("| {c:.2} s | {d:.2} s | {:.2}x |", c / d);
    Ok(())
}

/// A loop device over a file of `length` + 64 MiB full of 0xee; detached when dropped.
struct UsedDisk {
    device: String,
    _backing: tempfile::NamedTempFile,
}

impl UsedDisk {
    fn new(length: u64) -> Result<UsedDisk, String> {
        let backing = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let old = vec![0xeeu8; 4 << 20];
        let mut at = 0;
        while at < length + (64 << 20) {
            backing
                .as_file()
                .write_all_at(&old, at)
                .map_err(|e| e.to_string())?;
            at += old.len() as u64;
        }
        backing.as_file().sync_all().map_err(|e| e.to_string())?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing.path())
            .output()
            .map_err(|e| format!("losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup (needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(UsedDisk {
            device: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            _backing: backing,
        })
    }

    /// Runs `write` on the device: its seconds.
    fn time(
        &self,
        write: impl FnOnce(&str) -> std::io::Result<std::process::ExitStatus>,
    ) -> Result<f64, String> {
        let started = Instant::now();
        let status = write(&self.device).map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("writing {} failed: {status}", self.device));
        }
        Ok(seconds)
    }
}

impl Drop for UsedDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
