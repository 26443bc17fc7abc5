//! The manifest of an update bundle: which board and version it is, which versions it may
//! replace, the slot's boot files and root image (size, SHA-256, chunks) and the root's
//! dm-verity table, signed by a signing key (`manifest.sig`, detached, over the exact bytes).
//!
//! ```text
//! {"format":1, "board":"x86-64", "version":"0.2.0", "min_from_version":"0.1.0",
//!  "created":1767225600, "build_id":"3f2a…", "kernel_cmdline":"console=tty0 … quiet panic=10",
//!  "chunker":{"min":16384,"avg":65536,"max":262144},
//!  "boot":[{"path":"vmlinuz","size":…,"sha256":"…","chunks":[{"offset":0,"length":…,"sha256":"…"},…]},
//!          {"path":"initrd",…}],
//!  "root":{"size":…,"sha256":"…",
//!          "verity":{"root_hash":"…","salt":"…","data_blocks":…,"hash_start_block":…},
//!          "chunks":[…]},
//!  "patches":[{"file":"root","from_size":…,"from_sha256":"…","size":…,"sha256":"…",
//!              "chunks":[…]}],
//!  "key_id":"<16 hex>"}
//! ```
//! Each file lists its own chunks, in order, covering it exactly. `patches` (optional) offers,
//! for a file, its new bytes as a binary patch against one exact older file (`patch`): a box
//! whose running slot holds that older file may download the patch's chunks instead of the
//! file's. `kernel_cmdline` holds the
//! command line words besides the boot contract's `carapace.*` ones, which the box adds for the
//! slot it writes (`kernel_command_line`). The root image is the erofs data and its hash tree
//! right after it, as written to a root partition.

use std::ops::Deref;

use board_support::{BootParams, VerityParams};
use serde::{Deserialize, Serialize};

use crate::bounded::{MAX_MANIFEST, MAX_SIGNATURE};
use crate::bounded::{check_format, parse_json};
use crate::chunking::{ChunkRef, ChunkerParams};
use crate::digest::{Sha256Digest, is_lower_hex};
use crate::error::{Error, Result};
use crate::keys::{KeyId, SecretKey};
use crate::signature::{DetachedSignature, Purpose};
use crate::trust::Trust;
use crate::version::Version;

pub const FORMAT: u32 = 1;
/// dm-verity's data and hash block size in the boot contract.
pub const VERITY_BLOCK: u64 = 4096;
const HASHES_PER_BLOCK: u64 = VERITY_BLOCK / 32;
const MAX_BOOT_FILES: usize = 8;
/// Patches from a few releases back for each file is plenty.
const MAX_PATCHES: usize = 32;
const MAX_CMDLINE: usize = 2048;
/// dm-verity refuses salts longer than 256 bytes.
const MAX_SALT_HEX: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub board: String,
    pub version: Version,
    /// The oldest running version this update may replace.
    pub min_from_version: Version,
    /// Seconds since 1970, when the bundle was made.
    pub created: u64,
    /// The build's id (sha256 of its recipe and lock, in part), for the logs.
    pub build_id: String,
    pub kernel_cmdline: String,
    pub chunker: ChunkerParams,
    pub boot: Vec<BootFile>,
    pub root: RootImage,
    /// Absent from a bundle made without `--patch-from`, so such a manifest reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    pub key_id: KeyId,
}

/// A file's new bytes as a patch against an older file (zstd with that file as its
/// reference), cut into chunks like any file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// The file it makes, by its artifact name: `root`, or a boot file's path.
    pub file: String,
    /// The older file it applies to, exactly.
    pub from_size: u64,
    pub from_sha256: Sha256Digest,
    /// The patch itself.
    pub size: u64,
    pub sha256: Sha256Digest,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootFile {
    /// A plain file name in the slot's boot directory (`vmlinuz`, `initrd`).
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootImage {
    pub size: u64,
    pub sha256: Sha256Digest,
    pub verity: Verity,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verity {
    pub root_hash: Sha256Digest,
    /// Lower-case hex, as on the kernel command line.
    pub salt: String,
    pub data_blocks: u64,
    pub hash_start_block: u64,
}

impl Patch {
    /// The patch as a file of its own (its chunks are checked and fetched like a file's).
    pub fn as_artifact(&self) -> Artifact<'_> {
        Artifact {
            name: &self.file,
            boot_path: None,
            size: self.size,
            sha256: self.sha256,
            chunks: &self.chunks,
        }
    }
}

/// A file the manifest describes, root or boot, seen the same way.
#[derive(Clone, Copy, Debug)]
pub struct Artifact<'a> {
    /// `root`, or `boot/<path>`.
    pub name: &'a str,
    pub boot_path: Option<&'a str>,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub chunks: &'a [ChunkRef],
}

/// What the box checks a manifest against.
#[derive(Clone, Copy, Debug)]
pub struct UpdateCheck<'a> {
    /// The box's board, from its image.toml.
    pub board: &'a str,
    /// The version it runs.
    pub running: &'a Version,
    /// Seconds since 1970 (key expiry).
    pub now: u64,
    /// Install even an older or the same version (the owner asked for it).
    pub force: bool,
}

/// A manifest whose signature, signer, board and versions passed `verify`.
#[derive(Clone, Debug)]
pub struct CheckedManifest {
    manifest: Manifest,
    sha256: Sha256Digest,
}

impl Deref for CheckedManifest {
    type Target = Manifest;

    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl CheckedManifest {
    /// The SHA-256 of the manifest's bytes.
    pub fn sha256(&self) -> Sha256Digest {
        self.sha256
    }
}

/// Bytes and their detached signature, as written side by side (`x.json`, `x.sig`).
#[derive(Clone, Debug)]
pub struct Signed {
    pub bytes: Vec<u8>,
    pub signature: DetachedSignature,
}

impl Manifest {
    /// Parses and checks the structure: every rule below holds for a manifest the builder
    /// writes, so breaking one means a damaged or hostile file.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let what = "the manifest";
        let manifest: Manifest = parse_json(bytes, MAX_MANIFEST, what)?;
        manifest
            .validate()
            .map_err(|reason| Error::malformed(what, reason))?;
        Ok(manifest)
    }

    pub fn validate(&self) -> Result<(), String> {
        check_format(self.format, FORMAT)?;
        check_board(&self.board)?;
        if self.min_from_version > self.version {
            return Err(format!(
                "min_from_version {} is newer than the version {} itself",
                self.min_from_version, self.version
            ));
        }
        let build_id_ok = (1..=64).contains(&self.build_id.len()) && is_lower_hex(&self.build_id);
        if !build_id_ok {
            return Err("build_id must be 1 to 64 lower-case hex digits".into());
        }
        check_cmdline(&self.kernel_cmdline)?;
        self.chunker.check()?;
        if self.boot.is_empty() || self.boot.len() > MAX_BOOT_FILES {
            return Err(format!("boot must list 1 to {MAX_BOOT_FILES} files"));
        }
        for (i, file) in self.boot.iter().enumerate() {
            check_boot_path(&file.path)?;
            if self.boot[..i].iter().any(|other| other.path == file.path) {
                return Err(format!("boot file {} is listed twice", file.path));
            }
        }
        for artifact in self.artifacts() {
            check_chunks(&artifact, &self.chunker)
                .map_err(|reason| format!("{}: {reason}", artifact.name))?;
        }
        self.check_patches()?;
        check_verity(&self.root)
    }

    fn check_patches(&self) -> Result<(), String> {
        if self.patches.len() > MAX_PATCHES {
            return Err(format!("patches: more than {MAX_PATCHES}"));
        }
        for (i, patch) in self.patches.iter().enumerate() {
            let what = format!("the patch of {} from {}", patch.file, patch.from_sha256);
            if self.artifact(&patch.file).is_none() {
                return Err(format!("{what}: the manifest has no file {:?}", patch.file));
            }
            if patch.from_size == 0 {
                return Err(format!("{what}: it applies to an empty file"));
            }
            let twice = self.patches[..i]
                .iter()
                .any(|other| other.file == patch.file && other.from_sha256 == patch.from_sha256);
            if twice {
                return Err(format!("{what}: it is listed twice"));
            }
            check_chunks(&patch.as_artifact(), &self.chunker)
                .map_err(|reason| format!("{what}: {reason}"))?;
        }
        Ok(())
    }

    /// The file named `name` (`root`, or a boot file's path).
    pub fn artifact(&self, name: &str) -> Option<Artifact<'_>> {
        self.artifacts()
            .into_iter()
            .find(|artifact| artifact.name == name)
    }

    /// The root image first, then the boot files in order.
    pub fn artifacts(&self) -> Vec<Artifact<'_>> {
        let mut artifacts = vec![Artifact {
            name: "root",
            boot_path: None,
            size: self.root.size,
            sha256: self.root.sha256,
            chunks: &self.root.chunks,
        }];
        artifacts.extend(self.boot.iter().map(|file| Artifact {
            name: &file.path,
            boot_path: Some(&file.path),
            size: file.size,
            sha256: file.sha256,
            chunks: &file.chunks,
        }));
        artifacts
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and vectors of them serialize.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Checks the manifest, names `key` as its signer and signs its bytes.
    pub fn sign(mut self, key: &SecretKey) -> Result<Signed> {
        self.key_id = key.id();
        self.validate()
            .map_err(|reason| Error::malformed("the manifest to sign", reason))?;
        let bytes = self.to_json();
        let signature = DetachedSignature::sign(key, Purpose::Manifest, &bytes)?;
        Ok(Signed { bytes, signature })
    }

    /// The dm-verity table for the kernel command line.
    pub fn verity_params(&self) -> VerityParams {
        let verity = &self.root.verity;
        VerityParams {
            root_hash: verity.root_hash.to_hex(),
            salt: verity.salt.clone(),
            data_blocks: verity.data_blocks,
            hash_start_block: verity.hash_start_block,
        }
    }

    /// The loader entry's command line for a slot written from this manifest.
    pub fn command_line(&self, params: &BootParams) -> String {
        kernel_command_line(&self.kernel_cmdline, params)
    }
}

/// The one way a slot's command line is put together, by the builder for the slot it writes
/// and by the box for the slot it updates: the board's words, then the boot contract's.
pub fn kernel_command_line(kernel_words: &str, params: &BootParams) -> String {
    format!("{kernel_words} {}", params.to_kernel_args())
}

/// Checks a manifest for the box: the signature first (by the key the signature file names,
/// before a byte of the manifest is parsed), then the signer, the board and the versions.
pub fn verify(
    bytes: &[u8],
    signature: &[u8],
    trust: &Trust,
    check: &UpdateCheck,
) -> Result<CheckedManifest> {
    crate::bounded::check(signature, MAX_SIGNATURE, "the manifest's signature")?;
    crate::bounded::check(bytes, MAX_MANIFEST, "the manifest")?;
    let signature = DetachedSignature::parse(signature, "the manifest")?;
    let signer = trust.verify(Purpose::Manifest, bytes, &signature, check.now)?;
    let manifest = Manifest::parse(bytes)?;
    if manifest.key_id != signer {
        return Err(Error::SignerMismatch {
            what: "the manifest".into(),
            inside: manifest.key_id,
            signer,
        });
    }
    if manifest.board != check.board {
        return Err(Error::WrongBoard {
            running: check.board.to_owned(),
            offered: manifest.board,
        });
    }
    if *check.running < manifest.min_from_version {
        return Err(Error::BelowMinFrom {
            running: check.running.to_string(),
            offered: manifest.version.to_string(),
            min_from: manifest.min_from_version.to_string(),
        });
    }
    if !check.force {
        if manifest.version < *check.running {
            return Err(Error::Downgrade {
                running: check.running.to_string(),
                offered: manifest.version.to_string(),
            });
        }
        if manifest.version == *check.running {
            return Err(Error::AlreadyRunning {
                version: manifest.version.to_string(),
            });
        }
    }
    Ok(CheckedManifest {
        manifest,
        sha256: Sha256Digest::of(bytes),
    })
}

/// A board name as board-support spells them (`x86-64`, `pi5`).
pub(crate) fn check_board(board: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&board.len())
        && board
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(format!(
            "board {board:?} must be 1 to 32 lower-case letters, digits or '-'"
        ));
    }
    Ok(())
}

/// Printable words that fit a loader entry's one `options` line; the `carapace.*` words are
/// the box's to add for the slot it writes.
fn check_cmdline(cmdline: &str) -> Result<(), String> {
    if cmdline.len() > MAX_CMDLINE || !cmdline.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "kernel_cmdline must be printable ASCII, at most {MAX_CMDLINE} bytes"
        ));
    }
    if let Some(word) = cmdline
        .split_whitespace()
        .find(|word| word.starts_with("carapace."))
    {
        return Err(format!(
            "kernel_cmdline carries {word:?}; the carapace.* words are the box's to write"
        ));
    }
    Ok(())
}

fn check_boot_path(path: &str) -> Result<(), String> {
    // A plain name, or one folder and a name (a Pi's overlays/<name>.dtbo).
    let plain = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    let ok = (1..=64).contains(&path.len())
        && match path.split_once('/') {
            Some((folder, name)) => plain(folder) && plain(name),
            None => plain(path),
        };
    if !ok {
        return Err(format!(
            "boot file {path:?} must be a plain name of lower-case letters, digits, '.', '_', '-', or one folder and such a name"
        ));
    }
    Ok(())
}

/// Chunks run from offset 0 without gaps or overlaps to the end of the file, none empty or
/// longer than the chunker's maximum.
fn check_chunks(artifact: &Artifact, chunker: &ChunkerParams) -> Result<(), String> {
    if artifact.size == 0 {
        return Err("the file is empty".into());
    }
    let mut offset = 0u64;
    for chunk in artifact.chunks {
        if chunk.offset != offset {
            return Err(format!(
                "a chunk starts at {} where {offset} was expected",
                chunk.offset
            ));
        }
        if chunk.length == 0 || chunk.length > chunker.max {
            return Err(format!(
                "the chunk at {offset} is {} bytes, not 1 to {}",
                chunk.length, chunker.max
            ));
        }
        offset = offset
            .checked_add(chunk.length as u64)
            .ok_or("the chunks overflow")?;
    }
    if offset != artifact.size {
        return Err(format!(
            "the chunks cover {offset} bytes of {}",
            artifact.size
        ));
    }
    Ok(())
}

/// The root image is the data blocks, then the hash tree (boot contract): its size is exactly
/// that, so the box knows how much of a slot is the image.
fn check_verity(root: &RootImage) -> Result<(), String> {
    let verity = &root.verity;
    let salt_ok = verity.salt.len().is_multiple_of(2)
        && verity.salt.len() <= MAX_SALT_HEX
        && is_lower_hex(&verity.salt);
    if !salt_ok {
        return Err(
            "root: the verity salt must be an even number (at most 512) of lower-case \
                    hex digits"
                .into(),
        );
    }
    if verity.data_blocks == 0 || verity.hash_start_block < verity.data_blocks {
        return Err("root: verity needs data blocks, and the hash tree after them".into());
    }
    let expected = verity
        .hash_start_block
        .checked_add(verity_tree_blocks(verity.data_blocks))
        .and_then(|blocks| blocks.checked_mul(VERITY_BLOCK));
    if expected != Some(root.size) {
        return Err(format!(
            "root: {} bytes is not the data and hash tree that verity describes ({} data blocks, \
             tree at block {})",
            root.size, verity.data_blocks, verity.hash_start_block
        ));
    }
    Ok(())
}

/// Blocks of a sha256 dm-verity tree over `data_blocks` 4 KiB blocks: each level holds 128
/// hashes a block, up to a level of one block.
pub fn verity_tree_blocks(data_blocks: u64) -> u64 {
    let mut total = 0;
    let mut level = data_blocks;
    loop {
        level = level.div_ceil(HASHES_PER_BLOCK);
        total += level;
        if level <= 1 {
            return total;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::KeyKind;

    /// A structurally valid manifest over small made-up files (no signature).
    pub(crate) fn sample() -> Manifest {
        let chunk = |offset: u64, length: u32, byte: u8| ChunkRef {
            offset,
            length,
            sha256: Sha256Digest([byte; 32]),
        };
        let data_blocks = 3;
        let root_size = (data_blocks + verity_tree_blocks(data_blocks)) * VERITY_BLOCK;
        Manifest {
            format: FORMAT,
            board: "x86-64".into(),
            version: Version::parse("0.2.0").unwrap(),
            min_from_version: Version::parse("0.1.0").unwrap(),
            created: 1_767_225_600,
            build_id: "0123456789abcdef".into(),
            kernel_cmdline: "console=tty0 quiet panic=10".into(),
            chunker: ChunkerParams::DEFAULT,
            boot: vec![BootFile {
                path: "vmlinuz".into(),
                size: 100,
                sha256: Sha256Digest([1; 32]),
                chunks: vec![chunk(0, 60, 2), chunk(60, 40, 3)],
            }],
            root: RootImage {
                size: root_size,
                sha256: Sha256Digest([4; 32]),
                verity: Verity {
                    root_hash: Sha256Digest([5; 32]),
                    salt: "aa55".into(),
                    data_blocks,
                    hash_start_block: data_blocks,
                },
                chunks: vec![chunk(0, root_size as u32, 6)],
            },
            patches: Vec::new(),
            key_id: SecretKey::from_seed(KeyKind::Signing, &[1; 32]).id(),
        }
    }

    #[test]
    fn the_tree_size_matches_the_builders_tree() {
        assert_eq!(verity_tree_blocks(1), 1);
        assert_eq!(verity_tree_blocks(128), 1);
        assert_eq!(verity_tree_blocks(129), 3);
        // 128 * 128 + 7 blocks: 129 blocks of their hashes, 2 above them, the root block.
        assert_eq!(verity_tree_blocks(128 * 128 + 7), 129 + 2 + 1);
    }

    /// A patch of the sample's vmlinuz from an older one.
    fn with_patch(manifest: &mut Manifest) {
        manifest.patches.push(Patch {
            file: "vmlinuz".into(),
            from_size: 90,
            from_sha256: Sha256Digest([7; 32]),
            size: 30,
            sha256: Sha256Digest([8; 32]),
            chunks: vec![ChunkRef {
                offset: 0,
                length: 30,
                sha256: Sha256Digest([9; 32]),
            }],
        });
    }

    #[test]
    fn a_sample_round_trips() {
        let manifest = sample();
        assert_eq!(Manifest::parse(&manifest.to_json()).unwrap(), manifest);
        let mut patched = sample();
        with_patch(&mut patched);
        assert_eq!(Manifest::parse(&patched.to_json()).unwrap(), patched);
    }

    #[test]
    fn structural_faults_are_named() {
        type Fault = (&'static str, Box<dyn Fn(&mut Manifest)>);
        let faults: Vec<Fault> = vec![
            ("format 2", Box::new(|m| m.format = 2)),
            ("board", Box::new(|m| m.board = "X86".into())),
            (
                "min_from_version",
                Box::new(|m| m.min_from_version = Version::parse("0.3").unwrap()),
            ),
            ("build_id", Box::new(|m| m.build_id = "xyz".into())),
            (
                "box's to write",
                Box::new(|m| m.kernel_cmdline.push_str(" carapace.slot=b")),
            ),
            (
                "printable",
                Box::new(|m| m.kernel_cmdline.push_str("\ninitrd /evil")),
            ),
            ("boot must list", Box::new(|m| m.boot.clear())),
            ("plain name", Box::new(|m| m.boot[0].path = "../x".into())),
            (
                "listed twice",
                Box::new(|m| {
                    let again = m.boot[0].clone();
                    m.boot.push(again)
                }),
            ),
            (
                "where 60 was expected",
                Box::new(|m| m.boot[0].chunks[1].offset = 61),
            ),
            ("cover 100 bytes of 101", Box::new(|m| m.boot[0].size = 101)),
            ("not 1 to", Box::new(|m| m.boot[0].chunks[0].length = 0)),
            ("empty", Box::new(|m| m.boot[0].size = 0)),
            (
                "hash tree that verity describes",
                Box::new(|m| m.root.verity.hash_start_block = 4),
            ),
            ("salt", Box::new(|m| m.root.verity.salt = "abc".into())),
            (
                "chunk sizes",
                Box::new(|m| m.chunker.min = m.chunker.max + 2),
            ),
            (
                "the manifest has no file \"bzImage\"",
                Box::new(|m| {
                    with_patch(m);
                    m.patches[0].file = "bzImage".into();
                }),
            ),
            (
                "applies to an empty file",
                Box::new(|m| {
                    with_patch(m);
                    m.patches[0].from_size = 0;
                }),
            ),
            (
                "it is listed twice",
                Box::new(|m| {
                    with_patch(m);
                    with_patch(m);
                }),
            ),
            (
                "the chunks cover 30 bytes of 31",
                Box::new(|m| {
                    with_patch(m);
                    m.patches[0].size = 31;
                }),
            ),
        ];
        for (expected, fault) in faults {
            let mut manifest = sample();
            fault(&mut manifest);
            let err = Manifest::parse(&manifest.to_json()).unwrap_err();
            assert!(
                matches!(err, Error::Malformed { .. }) && err.to_string().contains(expected),
                "{expected}: {err}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_other_spellings_are_refused() {
        let json = String::from_utf8(sample().to_json()).unwrap();
        for bad in [
            json.replacen("\"board\"", "\"extra\": 1,\n  \"board\"", 1),
            json.replace("\"0.2.0\"", "\"v0.2.0\""),
            json.replace("\"created\": 1767225600", "\"created\": -1"),
        ] {
            assert!(Manifest::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_adds_the_slots_words_to_the_boards() {
        let manifest = sample();
        let params = BootParams {
            slot: board_support::Slot::B,
            root_partuuid: "0fc63daf-8483-4772-8e79-3d69d8477de4".into(),
            data_partuuid: "11111111-2222-4333-8444-555555555555".into(),
            esp_partuuid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into(),
            verity: manifest.verity_params(),
        };
        let line = manifest.command_line(&params);
        assert!(line.starts_with("console=tty0 quiet panic=10 carapace.slot=b "));
        assert_eq!(BootParams::parse(&line).unwrap(), params);
    }
}
