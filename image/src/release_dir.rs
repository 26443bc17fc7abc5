//! Where the root keeps the files that change from one release to the next, and why there.
//!
//! mkfs.erofs (erofs-utils 1.5, Debian 12's, which the builder runs) walks the staged tree
//! depth first, each directory's entries in byte order of their names, and writes every
//! file's inode and data where the walk has got to; an inode records where its data starts
//! and a directory the inode numbers of its entries. A file whose compressed size changes
//! therefore moves the data and the inode of everything the walk reaches after it. A
//! content-defined-chunk update (carapace-update) finds moved data again, but downloads every
//! chunk that holds one of the moved inodes; on a root with thousands of files they are all
//! over the image (a stand-in root measured 30 % for a 1 MiB change to agentd, 3.7 % with
//! agentd last: docs/updates.md).
//!
//! So the files a release changes (our binaries, the builder's generated files, the kernel's
//! modules) are staged under [`RELEASE_DIR`], a top-level directory whose name sorts after
//! every other, and reached through a symlink at their usual path, which stays the same from
//! release to release. The walk reaches them last, and what a release does not change keeps
//! its bytes and its place in the image whatever sizes the release's files have. Today's root
//! has about a hundred files, and there it saves only 0.1-0.3 MiB of an update (what agentd
//! itself changes dominates); it keeps the cost from growing with the number of Debian files.

use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// The top-level directory the walk reaches last ("zz": byte order puts it after /var and
/// after every name the root has; [`check_sorts_last`] makes sure of it on every build).
pub const RELEASE_DIR: &str = "/zz-release";

/// Where a file or directory at `path` (absolute in the image) is staged when a release
/// changes it: the same path under [`RELEASE_DIR`].
pub fn relocated(path: &str) -> String {
    format!("{RELEASE_DIR}/{}", path.trim_start_matches('/'))
}

/// The target of the symlink at `path` that leads to [`relocated`]`(path)`, relative to the
/// link's directory (as the root's other links are), so it resolves inside the tree wherever
/// the tree is: the box's `/`, a staging directory, an image mounted for inspection.
pub fn link_target(path: &str) -> String {
    let path = path.trim_start_matches('/');
    let depth = path.matches('/').count();
    format!(
        "{}{}",
        "../".repeat(depth),
        relocated(path).trim_start_matches('/')
    )
}

/// Fails when a top-level entry of the staged tree sorts after [`RELEASE_DIR`] (a recipe's
/// file at /zzz/…): the walk would reach it later, and a release would move it.
pub fn check_sorts_last(staging: &Path) -> Result<()> {
    let ours = RELEASE_DIR.trim_start_matches('/').as_bytes();
    let listing = std::fs::read_dir(staging).context(|| format!("list {}", staging.display()))?;
    for entry in listing {
        let entry = entry.context(|| format!("list {}", staging.display()))?;
        let name = entry.file_name();
        // Byte order, as mkfs.erofs compares names (strcmp), not the locale's.
        if name.as_encoded_bytes() > ours {
            return Err(Error::image(format!(
                "/{} sorts after {RELEASE_DIR}, where the files a release changes are kept \
                 so that updates stay small (docs/updates.md); put it elsewhere",
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relocated_path_is_reached_from_its_usual_place() {
        assert_eq!(relocated("/usr/bin/agentd"), "/zz-release/usr/bin/agentd");
        assert_eq!(
            link_target("/usr/bin/agentd"),
            "../../zz-release/usr/bin/agentd"
        );
        assert_eq!(link_target("/sbin/init"), "../zz-release/sbin/init");
        assert_eq!(link_target("/etc/carapace"), "../zz-release/etc/carapace");
        assert_eq!(
            link_target("/usr/lib/modules"),
            "../../zz-release/usr/lib/modules"
        );
    }

    #[test]
    fn a_top_level_name_after_the_release_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["usr", "var", "zz-release"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        check_sorts_last(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("zzz")).unwrap();
        let err = check_sorts_last(dir.path()).unwrap_err().to_string();
        assert!(err.contains("/zzz sorts after /zz-release"), "{err}");
    }
}
