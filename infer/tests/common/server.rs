//! The engine as a running program: `carapace-infer serve` on a free loopback port, for the
//! tests of its HTTP API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `carapace-infer serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cache's models folder with every pinned model in it (`carapace-infer fetch`).
pub fn models_dir() -> PathBuf {
    let status = Command::new(env!("CARGO_BIN_EXE_carapace-infer"))
        .arg("fetch")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "carapace-infer fetch failed");
    carapace_infer::models_dir().unwrap()
}

/// `carapace-infer serve` on a free loopback port over `models`, with `extra` arguments;
/// returns once it says where it listens.
pub fn serve(models: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_carapace-infer"))
        .args(["--threads", "2", "--models"])
        .arg(models)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("carapace-infer: listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_string();
    Server { child, url }
}
