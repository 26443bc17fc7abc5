//! Writing a bundle (`carapace bundle`): the slot's root image and boot files cut into chunks,
//! each stored once as `chunks/<sha256>`, patches from older releases' files (cut and stored
//! the same way), and the signed manifest that lists them. Written into `<dir>.partial` and
//! renamed into place, so a bundle directory is always whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::chunking::{ChunkIndex, ChunkerParams, FileChunks, chunk_stream, lacking_bytes};
use crate::error::{Error, Result};
use crate::keys::SecretKey;
use crate::layout::{BUNDLE_MANIFEST, BUNDLE_SIGNATURE, CHUNKS_DIR};
use crate::manifest::{BootFile, FORMAT, Manifest, Patch, RootImage, Verity};
use crate::version::Version;

/// What goes into a bundle.
#[derive(Clone, Debug)]
pub struct BundleInput {
    pub board: String,
    pub version: Version,
    pub min_from_version: Version,
    pub created: u64,
    pub build_id: String,
    pub kernel_cmdline: String,
    pub chunker: ChunkerParams,
    /// The root image as written to a slot: erofs, then its hash tree.
    pub root: PathBuf,
    pub verity: Verity,
    /// (name in the slot's boot directory, file).
    pub boot: Vec<(String, PathBuf)>,
    /// Older releases' files to patch from: (the file they are an older version of, `root`
    /// or a boot file's name; the older file). A patch is kept only when it is smaller than
    /// the new file's chunks that the older file lacks.
    pub patch_from: Vec<(String, PathBuf)>,
}

#[derive(Clone, Debug)]
pub struct BundleOutput {
    pub manifest: Manifest,
    /// Distinct chunks stored, and their bytes.
    pub chunk_files: usize,
    pub chunk_bytes: u64,
}

/// Writes the bundle for `input` to `dir`, signed with `key`, replacing what was there.
pub fn write_bundle(input: &BundleInput, key: &SecretKey, dir: &Path) -> Result<BundleOutput> {
    let mut partial = dir.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    remove_dir_if_present(&partial)?;
    let chunks_dir = partial.join(CHUNKS_DIR);
    std::fs::create_dir_all(&chunks_dir).map_err(Error::io("create", &chunks_dir))?;

    let mut store = ChunkStore {
        dir: &chunks_dir,
        files: 0,
        bytes: 0,
    };
    let root = store.add(&input.root, input.chunker)?;
    let mut boot_chunks = Vec::new();
    for (_, path) in &input.boot {
        boot_chunks.push(store.add(path, input.chunker)?);
    }
    let mut patches = Vec::new();
    for (name, older) in &input.patch_from {
        let (newer, chunks) = match name.as_str() {
            "root" => (&input.root, &root),
            _ => match input
                .boot
                .iter()
                .position(|(boot_name, _)| boot_name == name)
            {
                Some(i) => (&input.boot[i].1, &boot_chunks[i]),
                None => {
                    return Err(Error::malformed(
                        format!("the patch from {}", older.display()),
                        format!("the bundle has no file {name:?} (root, or a boot file)"),
                    ));
                }
            },
        };
        if let Some(patch) = store.add_patch(name, older, newer, chunks, input.chunker)? {
            patches.push(patch);
        }
    }
    let (chunk_files, chunk_bytes) = (store.files, store.bytes);
    let boot = input
        .boot
        .iter()
        .zip(boot_chunks)
        .map(|((name, _), file)| BootFile {
            path: name.clone(),
            size: file.size,
            sha256: file.sha256,
            chunks: file.chunks,
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT,
        board: input.board.clone(),
        version: input.version.clone(),
        min_from_version: input.min_from_version.clone(),
        created: input.created,
        build_id: input.build_id.clone(),
        kernel_cmdline: input.kernel_cmdline.clone(),
        chunker: input.chunker,
        boot,
        root: RootImage {
            size: root.size,
            sha256: root.sha256,
            verity: input.verity.clone(),
            chunks: root.chunks,
        },
        patches,
        // `sign` names the signer.
        key_id: key.id(),
    };
    let signed = manifest.sign(key)?;
    write_file(&partial.join(BUNDLE_MANIFEST), &signed.bytes)?;
    write_file(
        &partial.join(BUNDLE_SIGNATURE),
        signed.signature.to_file_text().as_bytes(),
    )?;
    // Parsing what was written back is the check that a box can read it.
    let manifest = Manifest::parse(&signed.bytes)?;

    remove_dir_if_present(dir)?;
    std::fs::rename(&partial, dir).map_err(Error::io("rename into place", dir))?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    board_support::atomic_file::sync_dir(parent).map_err(Error::io("fsync", parent))?;
    Ok(BundleOutput {
        manifest,
        chunk_files,
        chunk_bytes,
    })
}

struct ChunkStore<'a> {
    dir: &'a Path,
    files: usize,
    bytes: u64,
}

impl ChunkStore<'_> {
    /// Cuts `path` and stores each chunk not stored yet.
    fn add(&mut self, path: &Path, params: ChunkerParams) -> Result<FileChunks> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        self.add_from(
            std::io::BufReader::with_capacity(1 << 20, file),
            path,
            params,
        )
    }

    /// The patch from `older` to `newer` (whose chunks are `newer_chunks`), stored, if it is
    /// smaller than the chunks of `newer` that `older` lacks.
    fn add_patch(
        &mut self,
        name: &str,
        older: &Path,
        newer: &Path,
        newer_chunks: &FileChunks,
        params: ChunkerParams,
    ) -> Result<Option<Patch>> {
        let mut index = ChunkIndex::new();
        let from = index.add_file(older, None, params)?;
        let lacking = lacking_bytes(&index, &newer_chunks.chunks);
        if lacking == 0 {
            return Ok(None);
        }
        let bytes = crate::patch::make(older, newer)?;
        if bytes.len() as u64 >= lacking {
            return Ok(None);
        }
        let patch = self.add_from(&bytes[..], older, params)?;
        Ok(Some(Patch {
            file: name.to_owned(),
            from_size: from.size,
            from_sha256: from.sha256,
            size: patch.size,
            sha256: patch.sha256,
            chunks: patch.chunks,
        }))
    }

    fn add_from(
        &mut self,
        reader: impl std::io::Read,
        path: &Path,
        params: ChunkerParams,
    ) -> Result<FileChunks> {
        chunk_stream(
            reader,
            params,
            |chunk, bytes| {
                let at = self.dir.join(chunk.sha256.to_hex());
                if at.exists() {
                    return Ok(());
                }
                self.files += 1;
                self.bytes += bytes.len() as u64;
                std::fs::write(&at, bytes).map_err(Error::io("write", &at))
            },
            path,
        )
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    board_support::atomic_file::write(path, bytes, 0o644).map_err(Error::io("write", path))
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", dir)(err))
        }
        _ => Ok(()),
    }
}
