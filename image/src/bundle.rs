//! `carapace bundle`: an update for the recipe's board from the build's slot files
//! (out/<recipe>/slot/, building first when there is none): out/<recipe>/bundle/ with the
//! signed manifest and the chunks (carapace_update::write_bundle), and patches from the slot
//! directories of earlier releases given with `--patch-from` (kept from their builds).
//!
//! Refused up front: a recipe without `[update]` (its image would trust no key, so boxes that
//! install it could never take another update) and a signing key that the recipe's key list
//! does not trust.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use carapace_update::{
    BundleInput, BundleOutput, ChunkerParams, KeyKind, Lookup, SecretKey, Version,
};

use crate::build::{BuildOptions, Paths, build_with};
use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::slot_files::{SlotFiles, UpdateTrust};

pub struct BundleOptions {
    /// The signing key's secret file.
    pub key: PathBuf,
    /// The oldest running version the update may replace (default: any).
    pub min_from: Option<String>,
    /// Build first even when a finished build is there.
    pub build: bool,
    pub locked: bool,
    /// Slot directories of earlier releases (a copy of their out/<recipe>/slot) to make
    /// patches from, for boxes that run them.
    pub patch_from: Vec<PathBuf>,
    /// Sign the build it makes for Secure Boot with these keys (as `carapace build
    /// --secure-boot-keys`): the bundle then carries each slot's signed UKI.
    pub secure_boot_keys: Option<PathBuf>,
}

pub struct BundleReport {
    pub dir: PathBuf,
    pub output: BundleOutput,
    /// Whether this run built the image.
    pub built: bool,
}

pub fn bundle(
    recipe_path: &Path,
    workspace: &Path,
    options: &BundleOptions,
) -> Result<BundleReport> {
    let (recipe, _) = Recipe::load(recipe_path)?;
    if options.secure_boot_keys.is_some()
        && matches!(
            crate::board::find(&recipe.board)?.boot_flow,
            board_support::board::BootFlow::PiTryboot(_)
        )
    {
        return Err(Error::image(format!(
            "{}: {SIGNED_PI_UPDATES}",
            recipe_path.display()
        )));
    }
    let key = SecretKey::load(&options.key, KeyKind::Signing)?;
    check_key(&recipe, recipe_path, &key)?;
    let min_from = parse_version(options.min_from.as_deref().unwrap_or("0"), "--min-from")?;
    let older = options
        .patch_from
        .iter()
        .map(|dir| read_older(dir))
        .collect::<Result<Vec<_>>>()?;

    let paths = Paths::for_recipe(workspace, &recipe);
    let finished = paths.outputs().sbom.exists();
    let existing = if finished && !options.build {
        SlotFiles::read(&paths.out)?
    } else {
        None
    };
    let (slot, built) = match existing {
        Some(slot) => (slot, false),
        None => {
            build_with(
                recipe_path,
                workspace,
                BuildOptions {
                    locked: options.locked,
                    secure_boot_keys: options.secure_boot_keys.clone(),
                },
            )?;
            let slot = SlotFiles::read(&paths.out)?.ok_or_else(|| {
                Error::image(format!(
                    "the build left no {}/slot; build again",
                    paths.out.display()
                ))
            })?;
            (slot, true)
        }
    };
    let dir = paths.out.join("bundle");
    let output = bundle_slot(&slot, &recipe, &key, min_from, created(), &older, &dir)?;
    Ok(BundleReport { dir, output, built })
}

/// An earlier release's slot directory, for `--patch-from`.
fn read_older(dir: &Path) -> Result<SlotFiles> {
    SlotFiles::read_dir(dir)?.ok_or_else(|| {
        Error::image(format!(
            "--patch-from {}: no slot.json there; give a slot directory of an earlier build \
             (a copy of its out/<recipe>/slot)",
            dir.display()
        ))
    })
}

/// Bundles one build's slot files into `dir`, with patches from the `older` releases' files.
pub fn bundle_slot(
    slot: &SlotFiles,
    recipe: &Recipe,
    key: &SecretKey,
    min_from: Version,
    created: u64,
    older: &[SlotFiles],
    dir: &Path,
) -> Result<BundleOutput> {
    let info = &slot.info;
    if info.board != recipe.board || info.recipe != recipe.name {
        return Err(Error::image(format!(
            "{} holds a build of recipe {} for board {}, not of {}; build again",
            slot.dir.display(),
            info.recipe,
            info.board,
            recipe.name
        )));
    }
    // The bundle carries the build's root, and with it the keys that box will trust next.
    if info.update_trust != recipe.update.as_ref().map(UpdateTrust::of) {
        return Err(Error::image(format!(
            "{} was built with other update keys ([update] root_key and key_list) than the \
             recipe names now; bundle --build to build it again",
            slot.dir.display()
        )));
    }
    // The bundle's version is the build's; a recipe whose version moved since needs a build.
    if info.version != recipe.image_version() {
        return Err(Error::image(format!(
            "{} holds a build of version {}, but the recipe's version is now {}; bundle \
             --build to build it again",
            slot.dir.display(),
            info.version,
            recipe.image_version()
        )));
    }
    if crate::pi_signed_boot::is_signed_slot(&info.boot_files) {
        return Err(Error::image(format!(
            "{} holds a signed Raspberry Pi 5 build: {SIGNED_PI_UPDATES}",
            slot.dir.display()
        )));
    }
    let version = parse_version(&info.version, "the build's version")?;
    if let Some(other) = older.iter().find(|o| o.info.board != info.board) {
        return Err(Error::image(format!(
            "--patch-from {} holds a build for board {}, not {}; patches apply only to the \
             same board's files",
            other.dir.display(),
            other.info.board,
            info.board
        )));
    }
    let patch_from = older
        .iter()
        .flat_map(|o| std::iter::once((String::from("root"), o.root_image())).chain(o.boot_files()))
        .collect();
    if min_from > version {
        return Err(Error::image(format!(
            "--min-from {min_from} is newer than the version {version} being bundled"
        )));
    }
    let input = BundleInput {
        board: info.board.clone(),
        version,
        min_from_version: min_from,
        created,
        build_id: info.build_id.clone(),
        kernel_cmdline: info.kernel_cmdline.clone(),
        chunker: ChunkerParams::DEFAULT,
        root: slot.root_image(),
        verity: info.verity.clone(),
        boot: slot.boot_files(),
        patch_from,
    };
    Ok(carapace_update::write_bundle(&input, key, dir)?)
}

/// Why a signed Pi build is not bundled (docs/boot-contract.md, "Raspberry Pi 5: signed boot").
const SIGNED_PI_UPDATES: &str = "a signed Raspberry Pi 5 image cannot be updated over the air \
     yet: the box's update service does not install a slot's signed boot.img and boot.sig \
     (it writes loose boot files and a cmdline.txt of its own, which the firmware's signed boot \
     never reads), and its kexec trial cannot start a kernel kept inside a boot.img; bundle a \
     build made without --secure-boot-keys for Pi boxes that boot unsigned, or reflash a signed \
     box with a new image";

/// The recipe must build in a key list that trusts `key`.
fn check_key(recipe: &Recipe, recipe_path: &Path, key: &SecretKey) -> Result<()> {
    let Some(update) = &recipe.update else {
        return Err(Error::image(format!(
            "{} has no [update] section: its image would trust no update key, so boxes running \
             it could never take another update; add [update] with root_key and key_list \
             (docs/updates.md)",
            recipe_path.display()
        )));
    };
    let root = update.root_public_key().map_err(Error::image)?;
    let list = carapace_update::SignedKeyList::parse(update.key_list_text.as_bytes())?;
    let list = list.verify(&root)?;
    match list.lookup(key.id()) {
        Lookup::Trusted(_) => Ok(()),
        Lookup::Revoked => Err(Error::image(format!(
            "signing key {} is revoked by the recipe's key list (serial {}); sign with a key \
             the list names",
            key.id(),
            list.serial
        ))),
        Lookup::Unknown => Err(Error::image(format!(
            "signing key {} is not in the recipe's key list ({}, serial {}), so the image would \
             not trust it; add it with `carapace keys sign` and point [update] key_list at the \
             new list",
            key.id(),
            update.key_list,
            list.serial
        ))),
    }
}

fn parse_version(text: &str, what: &str) -> Result<Version> {
    Version::parse(text).map_err(|reason| Error::image(format!("{what}: {reason}")))
}

/// SOURCE_DATE_EPOCH when set (reproducible bundles), else now.
fn created() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygen::{KeyListRequest, keygen, sign_key_list};
    use crate::slot_files::{SlotInfo, write};
    use carapace_update::manifest::verity_tree_blocks;

    const RECIPE: &str = r#"
name = "t"
board = "x86-64"
hostname = "carapace"
version = "0.3.0"
[debian]
suite = "trixie"
packages = []
[[service]]
name = "agentd"
exec = ["/usr/bin/agentd"]
uid = 1000
gid = 1000
memory_max = 268435456
ready = true
"#;

    struct Setup {
        dir: tempfile::TempDir,
        recipe: Recipe,
        slot: SlotFiles,
    }

    /// Keys, a key list naming `signing.key`, a recipe with [update], and slot files as a
    /// build leaves them (made-up bytes, the right sizes).
    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = keygen(&d.join("root.key"), KeyKind::Root).unwrap();
        keygen(&d.join("signing.key"), KeyKind::Signing).unwrap();
        keygen(&d.join("other.key"), KeyKind::Signing).unwrap();
        sign_key_list(&KeyListRequest {
            root_secret: d.join("root.key"),
            keys: vec![d.join("signing.key.pub")],
            revoke: vec![],
            not_after: vec![],
            serial: 1,
            out: d.join("keys.json"),
        })
        .unwrap();
        let recipe_path = d.join("t.toml");
        std::fs::write(
            &recipe_path,
            format!(
                "{RECIPE}[update]\nroot_key = \"{}\"\nkey_list = \"keys.json\"\n\
                 server = \"https://updates.example.com/x86-64\"\n",
                root.to_hex()
            ),
        )
        .unwrap();
        let (recipe, _) = Recipe::load(&recipe_path).unwrap();
        let data_blocks = 40;
        let data = vec![7u8; data_blocks as usize * 4096];
        let tree = vec![9u8; verity_tree_blocks(data_blocks) as usize * 4096];
        let info = SlotInfo {
            recipe: "t".into(),
            board: "x86-64".into(),
            version: "0.3.0".into(),
            build_id: "0011223344556677".into(),
            kernel_cmdline: "console=tty0 quiet".into(),
            verity: carapace_update::Verity {
                root_hash: carapace_update::Sha256Digest::of(b"top"),
                salt: "ab".into(),
                data_blocks,
                hash_start_block: data_blocks,
            },
            update_trust: recipe.update.as_ref().map(UpdateTrust::of),
            boot_files: crate::slot_files::uefi_boot_files(),
        };
        let out = d.join("out");
        write(
            &out,
            &info,
            &data,
            &tree,
            &crate::slot_files::uefi_pair(b"kernel", b"initrd"),
        )
        .unwrap();
        let slot = SlotFiles::read(&out).unwrap().unwrap();
        Setup { dir, recipe, slot }
    }

    #[test]
    fn bundles_a_builds_slot_files() {
        let s = setup();
        let key = SecretKey::load(&s.dir.path().join("signing.key"), KeyKind::Signing).unwrap();
        check_key(&s.recipe, Path::new("t.toml"), &key).unwrap();
        let dir = s.dir.path().join("bundle");
        let min_from = Version::parse("0.2.0").unwrap();
        let output = bundle_slot(&s.slot, &s.recipe, &key, min_from, 5, &[], &dir).unwrap();
        let manifest = &output.manifest;
        assert_eq!(manifest.version.as_str(), "0.3.0");
        assert_eq!(manifest.min_from_version.as_str(), "0.2.0");
        assert_eq!(manifest.boot.len(), 2);
        assert_eq!(
            manifest.root.size,
            std::fs::metadata(s.slot.root_image()).unwrap().len()
        );
        assert_eq!(manifest.kernel_cmdline, "console=tty0 quiet");
        assert!(dir.join("manifest.sig").exists());
        for chunk in &manifest.root.chunks {
            assert!(dir.join("chunks").join(chunk.sha256.to_hex()).exists());
        }
    }

    #[test]
    fn a_signed_pi_build_is_not_bundled_and_the_refusal_says_what_is_missing() {
        let s = setup();
        let key = SecretKey::load(&s.dir.path().join("signing.key"), KeyKind::Signing).unwrap();
        let out = s.dir.path().join("signed-pi");
        let mut info = s.slot.info.clone();
        let mut files = Vec::new();
        for slot in [board_support::Slot::A, board_support::Slot::B] {
            for name in crate::pi_signed_boot::slot_file_names(slot) {
                files.push((name, b"signed".to_vec()));
            }
        }
        files.push(("config.txt".to_string(), b"boot_ramdisk=1\n".to_vec()));
        info.boot_files = files.iter().map(|(name, _)| name.clone()).collect();
        let root = std::fs::read(s.slot.root_image()).unwrap();
        let data_len = info.verity.data_blocks as usize * 4096;
        write(&out, &info, &root[..data_len], &root[data_len..], &files).unwrap();
        let slot = SlotFiles::read(&out).unwrap().unwrap();
        let any = Version::parse("0").unwrap();
        let dir = s.dir.path().join("bundle");
        let err = bundle_slot(&slot, &s.recipe, &key, any, 5, &[], &dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds a signed Raspberry Pi 5 build"), "{err}");
        assert!(
            err.contains("does not install a slot's signed boot.img and boot.sig"),
            "{err}"
        );
        assert!(!dir.exists(), "a refused bundle wrote {}", dir.display());
    }

    /// An earlier release's slot directory, as a release engineer keeps it: `setup`'s files
    /// with a few bytes of the root changed, for `board`.
    fn older_slot(s: &Setup, board: &str) -> SlotFiles {
        let out = s.dir.path().join(format!("older-{board}"));
        let mut info = s.slot.info.clone();
        info.board = board.into();
        info.version = "0.2.0".into();
        let root = std::fs::read(s.slot.root_image()).unwrap();
        let data_len = info.verity.data_blocks as usize * 4096;
        let mut data = root[..data_len].to_vec();
        data[4096] = 1;
        write(
            &out,
            &info,
            &data,
            &root[data_len..],
            &crate::slot_files::uefi_pair(b"kernel", b"initrd"),
        )
        .unwrap();
        read_older(&out.join(crate::slot_files::DIR)).unwrap()
    }

    #[test]
    fn patches_come_from_earlier_releases_of_the_same_board() {
        let s = setup();
        let key = SecretKey::load(&s.dir.path().join("signing.key"), KeyKind::Signing).unwrap();
        let dir = s.dir.path().join("bundle");
        let any = || Version::parse("0").unwrap();
        let older = older_slot(&s, "x86-64");
        let output = bundle_slot(&s.slot, &s.recipe, &key, any(), 5, &[older], &dir).unwrap();
        // The root changed: its patch is in. The boot files did not: theirs would cost more
        // than the nothing their chunks cost.
        let patches = &output.manifest.patches;
        assert_eq!(patches.len(), 1, "{patches:?}");
        assert_eq!(patches[0].file, "root");
        for chunk in &patches[0].chunks {
            assert!(dir.join("chunks").join(chunk.sha256.to_hex()).exists());
        }

        let pi = older_slot(&s, "pi5");
        let err = bundle_slot(&s.slot, &s.recipe, &key, any(), 5, &[pi], &dir).unwrap_err();
        assert!(err.to_string().contains("not x86-64"), "{err}");
        let err = read_older(s.dir.path()).unwrap_err();
        assert!(err.to_string().contains("no slot.json there"), "{err}");
    }

    #[test]
    fn refuses_keys_the_image_would_not_trust_and_recipes_without_update() {
        let s = setup();
        let other = SecretKey::load(&s.dir.path().join("other.key"), KeyKind::Signing).unwrap();
        let err = check_key(&s.recipe, Path::new("t.toml"), &other).unwrap_err();
        assert!(
            err.to_string().contains("not in the recipe's key list"),
            "{err}"
        );
        let mut bare = s.recipe.clone();
        bare.update = None;
        let err = check_key(&bare, Path::new("t.toml"), &other).unwrap_err();
        assert!(err.to_string().contains("no [update] section"), "{err}");

        let key = SecretKey::load(&s.dir.path().join("signing.key"), KeyKind::Signing).unwrap();
        // A build made before the recipe's key list changed carries the old list.
        let mut stale = s.recipe.clone();
        if let Some(update) = &mut stale.update {
            update.key_list_text.push(' ');
        }
        let err = bundle_slot(
            &s.slot,
            &stale,
            &key,
            Version::parse("0").unwrap(),
            5,
            &[],
            &s.dir.path().join("b"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bundle --build"), "{err}");

        // A build of another version than the recipe names now.
        let mut moved = s.recipe.clone();
        moved.version = Some("0.3.1".into());
        let err = bundle_slot(
            &s.slot,
            &moved,
            &key,
            Version::parse("0").unwrap(),
            5,
            &[],
            &s.dir.path().join("b"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("version is now 0.3.1") && err.to_string().contains("--build"),
            "{err}"
        );

        let too_new = Version::parse("0.4").unwrap();
        let err = bundle_slot(
            &s.slot,
            &s.recipe,
            &key,
            too_new,
            5,
            &[],
            &s.dir.path().join("b"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--min-from"), "{err}");
    }
}
