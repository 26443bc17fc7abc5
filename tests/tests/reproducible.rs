//! Two checkouts of this tree, in different directories, each with its own empty build cache
//! (so every package is downloaded twice), build the shipped recipe from one lock with
//! `--locked` and get the same bytes. The image's own binaries are compiled in each
//! checkout (target/image, with that checkout's path remapped); only the host's `carapace`
//! CLI shares one cargo target directory, as it writes the image but is not in it.

use std::path::{Path, PathBuf};
use std::process::Command;

const RECIPE: &str = "recipes/x86-64-qemu.toml";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// A copy of the tracked files (with the working tree's changes) at `dest`.
fn checkout(dest: &Path) {
    let ws = workspace();
    let files = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&ws)
        .output()
        .expect("git ls-files");
    assert!(files.status.success(), "git ls-files failed");
    for rel in files.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("utf-8 path"));
        let from = ws.join(rel);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
}

/// `carapace <args>` run from the checkout at `dir`, with the shared `target` and its `cache`.
fn carapace(dir: &Path, target: &Path, cache: &Path, args: &[&str]) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "-q", "--release", "-p", "carapace-image", "--"])
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CARAPACE_CACHE", cache)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo run carapace");
    assert!(
        out.status.success(),
        "carapace {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host CLI's target directory, shared by both checkouts (beside the workspace's own).
fn shared_target() -> PathBuf {
    workspace().join("target/reproducible-cli")
}

fn build_in(dir: &Path) -> String {
    carapace(
        dir,
        &shared_target(),
        &dir.join("cache"),
        &["build", "--locked", "--recipe", RECIPE],
    );
    carapace_image::fsutil::sha256_file(&dir.join("out/x86-64-qemu/carapace.img")).expect("hash")
}

#[test]
fn two_checkouts_with_clean_caches_build_identical_images() {
    let first = tempfile::Builder::new()
        .prefix("carapace-checkout-a-")
        .tempdir()
        .expect("tempdir");
    let second = tempfile::Builder::new()
        .prefix("carapace-checkout-bb-")
        .tempdir()
        .expect("tempdir");
    checkout(first.path());
    checkout(second.path());
    // The committed lock may pin versions the archive has dropped since (and the snapshot
    // archive may be out of reach): bring it up to date once, with a cache of its own, and
    // give both checkouts the same lock.
    let lock_cache = tempfile::tempdir().expect("tempdir");
    carapace(
        first.path(),
        &shared_target(),
        lock_cache.path(),
        &["lock", "--recipe", RECIPE],
    );
    let lock = RECIPE.replace(".toml", ".lock");
    std::fs::copy(first.path().join(&lock), second.path().join(&lock)).expect("copy lock");
    let a = build_in(first.path());
    let b = build_in(second.path());
    assert_eq!(
        a, b,
        "two checkouts built different images from one lock ({RECIPE})"
    );
}
