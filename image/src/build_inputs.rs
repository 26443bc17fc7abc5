//! What a build reads, as one digest, so that a build whose inputs have not changed reuses the
//! last build's outputs instead of writing the same bytes again (the build is reproducible).
//! Every whole-system test binary asks for the test image; without this each one built it.
//!
//! The inputs: the workspace as git sees it (the commit, the changes to tracked files, and the
//! untracked files that are not ignored), which holds our sources, Cargo.lock, the recipes,
//! their locks and files; the Rust toolchain and mkfs.erofs, which shape the bytes;
//! SOURCE_DATE_EPOCH; and `--locked`. The Debian packages are pinned by sha256 in the lock.
//! Outside a git checkout, or for a recipe outside the workspace, there is no digest and every
//! build builds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Beside the outputs: the digest of the inputs they were built from. Written last, after
/// sbom.json; removed first when a build starts and when anything changes the image after
/// its build (owner settings).
pub const STAMP_FILE: &str = "inputs.sha256";

/// The digest of what a build of `recipe_path` in `workspace` reads, or `None` when that
/// cannot be known.
pub fn digest(
    workspace: &Path,
    recipe_path: &Path,
    options: &crate::build::BuildOptions,
) -> Option<String> {
    let workspace = workspace.canonicalize().ok()?;
    let recipe = recipe_path.canonicalize().ok()?;
    if !recipe.starts_with(&workspace) {
        return None;
    }
    let mut hash = Sha256::new();
    let mut part = |name: &str, bytes: &[u8]| {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    part("recipe", recipe.to_string_lossy().as_bytes());
    part("locked", &[u8::from(options.locked)]);
    // A Secure Boot build differs by what it is signed with: the db certificate says which.
    if let Some(keys) = &options.secure_boot_keys {
        part(
            "secure-boot db.crt",
            &std::fs::read(keys.join("db.crt")).ok()?,
        );
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_default();
    part("SOURCE_DATE_EPOCH", epoch.as_bytes());
    part("HEAD", &output(&workspace, "git", &["rev-parse", "HEAD"])?);
    part(
        "changes",
        &output(
            &workspace,
            "git",
            &["diff", "HEAD", "--binary", "--no-ext-diff", "--no-color"],
        )?,
    );
    let untracked = output(
        &workspace,
        "git",
        &["ls-files", "-z", "--others", "--exclude-standard"],
    )?;
    for name in untracked.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        part("untracked", name.as_bytes());
        part("contents", &std::fs::read(workspace.join(&*name)).ok()?);
    }
    part("rustc", &output(&workspace, "rustc", &["-vV"])?);
    part("mkfs.erofs", &file_on_path("mkfs.erofs")?);
    Some(hex::encode(hash.finalize()))
}

/// The stamp in `out` (the recipe's output directory).
pub fn stamp_path(out: &Path) -> PathBuf {
    out.join(STAMP_FILE)
}

/// Whether `out` holds a finished build from inputs with `digest`.
pub fn unchanged(out: &Path, digest: &str) -> bool {
    let mut stamp = String::new();
    std::fs::File::open(stamp_path(out))
        .and_then(|mut f| f.read_to_string(&mut stamp))
        .is_ok()
        && stamp.trim() == digest
}

fn output(dir: &Path, program: &str, args: &[&str]) -> Option<Vec<u8>> {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout)
}

fn file_on_path(program: &str) -> Option<Vec<u8>> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::read(found).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildOptions;

    fn unlocked() -> BuildOptions {
        BuildOptions::default()
    }

    fn locked() -> BuildOptions {
        BuildOptions {
            locked: true,
            ..BuildOptions::default()
        }
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    }

    /// A git checkout with a recipe in it, committed.
    fn checkout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("recipe.toml"), "name = \"x\"\n").expect("recipe");
        std::fs::write(dir.path().join(".gitignore"), "/out\n").expect("gitignore");
        git(dir.path(), &["add", "."]);
        git(
            dir.path(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "x",
            ],
        );
        dir
    }

    fn digest_of(dir: &Path) -> String {
        digest(dir, &dir.join("recipe.toml"), &unlocked()).expect("a digest in a git checkout")
    }

    #[test]
    fn the_same_tree_gives_the_same_digest_and_ignored_outputs_do_not_count() {
        let dir = checkout();
        let first = digest_of(dir.path());
        std::fs::create_dir(dir.path().join("out")).expect("out");
        std::fs::write(dir.path().join("out/carapace.img"), "image").expect("output");
        assert_eq!(digest_of(dir.path()), first);
    }

    #[test]
    fn a_changed_tracked_file_a_new_file_and_locked_each_change_the_digest() {
        let dir = checkout();
        let first = digest_of(dir.path());
        std::fs::write(dir.path().join("recipe.toml"), "name = \"y\"\n").expect("edit");
        let edited = digest_of(dir.path());
        assert_ne!(edited, first);
        std::fs::write(dir.path().join("new.rs"), "fn main() {}").expect("new file");
        let added = digest_of(dir.path());
        assert_ne!(added, edited);
        std::fs::write(dir.path().join("new.rs"), "fn main() { }").expect("edit new file");
        assert_ne!(digest_of(dir.path()), added);
        let recipe = dir.path().join("recipe.toml");
        assert_ne!(
            digest(dir.path(), &recipe, &locked()),
            digest(dir.path(), &recipe, &unlocked())
        );
    }

    #[test]
    fn no_digest_outside_git_or_for_a_recipe_outside_the_workspace() {
        let plain = tempfile::tempdir().expect("tempdir");
        std::fs::write(plain.path().join("recipe.toml"), "name = \"x\"\n").expect("recipe");
        assert_eq!(
            digest(plain.path(), &plain.path().join("recipe.toml"), &unlocked()),
            None
        );
        let dir = checkout();
        assert_eq!(
            digest(dir.path(), &plain.path().join("recipe.toml"), &unlocked()),
            None
        );
    }

    #[test]
    fn only_a_matching_stamp_counts() {
        let out = tempfile::tempdir().expect("tempdir");
        assert!(!unchanged(out.path(), "abc"));
        std::fs::write(stamp_path(out.path()), "abc\n").expect("stamp");
        assert!(unchanged(out.path(), "abc"));
        assert!(!unchanged(out.path(), "abd"));
    }
}
