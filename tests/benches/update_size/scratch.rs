//! A second checkout to build the changed releases in: the checkout's files as they are
//! (committed or not, what git does not ignore), kept between runs with its own target
//! directory, so after the first run a change costs only the crates it touches. The
//! checkout itself is never edited: a bench stopped half-way leaves it as it was.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{Context, Result, fail};

/// Left alone by a sync: the scratch checkout's own build outputs.
const KEPT: &[&str] = &["target", "out"];

pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    /// Makes `root` hold exactly the checkout's files. A file whose bytes are already right
    /// is not rewritten: its modification time stays, and cargo rebuilds nothing for it.
    pub fn sync(checkout: &Path, root: &Path) -> Result<Scratch> {
        let wanted = checkout_files(checkout)?;
        std::fs::create_dir_all(root).context(|| format!("create {}", root.display()))?;
        for rel in &wanted {
            let bytes = std::fs::read(checkout.join(rel))
                .context(|| format!("read {}", checkout.join(rel).display()))?;
            write_if_changed(&root.join(rel), &bytes)?;
        }
        remove_others(root, root, &wanted)?;
        Ok(Scratch { root: root.into() })
    }

    /// Replaces the one occurrence of `from` in the scratch copy of `file` with `to`.
    pub fn replace(&self, file: &str, from: &str, to: &str) -> Result<()> {
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).context(|| format!("read {}", path.display()))?;
        let changed = replace_once(&text, from, to).ok_or_else(|| {
            fail(format!(
                "{file} no longer has {from:?} once, the string the bench changes: pick \
                 another in tests/benches/update_size.rs"
            ))
        })?;
        write_if_changed(&path, changed.as_bytes())
    }
}

/// `text` with its only occurrence of `from` replaced; `None` unless it occurs exactly once.
pub fn replace_once(text: &str, from: &str, to: &str) -> Option<String> {
    (text.matches(from).count() == 1).then(|| text.replacen(from, to, 1))
}

/// Tracked files and untracked ones git does not ignore, as `git ls-files` names them.
fn checkout_files(checkout: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = Command::new("git")
        .current_dir(checkout)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context(|| "run git ls-files".into())?;
    if !out.status.success() {
        return Err(fail(format!(
            "git ls-files in {} failed: the bench copies the checkout's files as git lists \
             them ({})",
            checkout.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        // Listed but deleted in the work tree: not part of the checkout as it is.
        .filter(|rel| checkout.join(rel).is_file())
        .collect())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).context(|| format!("write {}", path.display()))
}

/// Removes what the checkout does not have (a file deleted there since the last run).
fn remove_others(root: &Path, dir: &Path, wanted: &BTreeSet<PathBuf>) -> Result<()> {
    let listing = std::fs::read_dir(dir).context(|| format!("list {}", dir.display()))?;
    for entry in listing {
        let entry = entry.context(|| format!("list {}", dir.display()))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if dir == root && KEPT.iter().any(|k| rel == Path::new(k)) {
            continue;
        }
        let kind = entry
            .file_type()
            .context(|| format!("stat {}", path.display()))?;
        if kind.is_dir() {
            remove_others(root, &path, wanted)?;
            if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(&path).context(|| format!("remove {}", path.display()))?;
            }
        } else if !wanted.contains(&rel) {
            std::fs::remove_file(&path).context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

pub const CHECKS: &[(&str, fn())] = &[
    ("a string that occurs once is replaced", || {
        assert_eq!(
            replace_once("a (\"help\", \"x\") b", "\"x\"", "\"y\"").as_deref(),
            Some("a (\"help\", \"y\") b")
        );
    }),
    ("a string that is gone or not unique is refused", || {
        assert_eq!(replace_once("abc", "x", "y"), None);
        assert_eq!(replace_once("x x", "x", "y"), None);
    }),
];
