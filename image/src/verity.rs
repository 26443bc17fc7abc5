//! dm-verity hash tree (format 1, sha256, 4096-byte blocks, salt prepended), laid out like
//! `veritysetup format --no-superblock`: the level nearest the root first, data hashes last.
//! Hand-written because no crate builds one; checked byte for byte against veritysetup.

use sha2::{Digest, Sha256};

pub const BLOCK: usize = 4096;
const HASH: usize = 32;
const HASHES_PER_BLOCK: usize = BLOCK / HASH;

pub struct VerityTree {
    pub root_hash: [u8; HASH],
    /// Hash blocks in on-disk order, to be written right after the data.
    pub tree: Vec<u8>,
    pub data_blocks: u64,
}

/// `data` must be a whole number of blocks.
pub fn build(data: &[u8], salt: &[u8]) -> VerityTree {
    assert!(
        data.len().is_multiple_of(BLOCK),
        "verity data must be block aligned"
    );
    let hash_block = |block: &[u8]| -> [u8; HASH] {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(block);
        h.finalize().into()
    };

    // levels[0] hashes the data; each next level hashes the previous level's blocks.
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<[u8; HASH]> = data.chunks(BLOCK).map(hash_block).collect();
    loop {
        let mut level = Vec::with_capacity(current.len().div_ceil(HASHES_PER_BLOCK) * BLOCK);
        for chunk in current.chunks(HASHES_PER_BLOCK) {
            for digest in chunk {
                level.extend_from_slice(digest);
            }
            level.resize(level.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        let blocks = level.len() / BLOCK;
        current = level.chunks(BLOCK).map(hash_block).collect();
        levels.push(level);
        if blocks <= 1 {
            break;
        }
    }
    let root_hash = current[0];
    let tree = levels.into_iter().rev().flatten().collect();
    VerityTree {
        root_hash,
        tree,
        data_blocks: (data.len() / BLOCK) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Compares against cryptsetup's veritysetup (installed by `make deps`) on data that
    /// needs three tree levels.
    #[test]
    fn matches_veritysetup() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = 128 * 128 + 7;
        let data: Vec<u8> = (0..blocks * BLOCK).map(|i| (i * 7 % 251) as u8).collect();
        let salt = [0x5a_u8; 32];
        let data_path = dir.path().join("data");
        let hash_path = dir.path().join("hash");
        std::fs::write(&data_path, &data).unwrap();
        let out = Command::new("veritysetup")
            .args(["format", "--no-superblock", "--hash=sha256"])
            .args(["--data-block-size=4096", "--hash-block-size=4096"])
            .arg(format!("--salt={}", hex::encode(salt)))
            .arg(&data_path)
            .arg(&hash_path)
            .output()
            .expect("veritysetup (Debian package cryptsetup-bin) must be installed: make deps");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Root hash:"))
            .unwrap()
            .trim()
            .to_string();

        let tree = build(&data, &salt);
        assert_eq!(hex::encode(tree.root_hash), expected);
        assert_eq!(tree.tree, std::fs::read(&hash_path).unwrap());
        assert_eq!(tree.data_blocks, blocks as u64);
        // The update manifest's rule for a root image's size counts the same tree.
        assert_eq!(
            tree.tree.len() as u64,
            carapace_update::manifest::verity_tree_blocks(blocks as u64) * BLOCK as u64
        );
    }

    #[test]
    fn the_update_manifest_counts_the_same_tree() {
        for blocks in [1usize, 2, 127, 128, 129, 300, 128 * 3 + 1] {
            let tree = build(&vec![0u8; blocks * BLOCK], b"salt");
            let counted = carapace_update::manifest::verity_tree_blocks(blocks as u64);
            assert_eq!(tree.tree.len(), counted as usize * BLOCK, "{blocks} blocks");
        }
    }
}
