//! The whole path on synthetic files, host side and box side: keys, a key list, two bundles,
//! a repository, and a box that checks the pointer and manifest, finds the chunks its running
//! slot lacks, downloads them from the repository, and assembles the other slot. Then each
//! refusal, with the error it must give and a check that the target slot was not touched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::chunking::tests::noise;
use crate::manifest::{VERITY_BLOCK, verity_tree_blocks};
use crate::*;

const NOW: u64 = 1_800_000_000;
const BOARD: &str = "x86-64";
/// What the target slot holds before an update writes it.
const UNTOUCHED: &[u8] = b"the other slot, as it was";

struct Fleet {
    dir: tempfile::TempDir,
    root: SecretKey,
    signing: SecretKey,
    /// The key list built into the image (serial 1: `signing`).
    image_list: SignedKeyList,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        // As `carapace keygen` makes them: written, then loaded from their files.
        let root_path = dir.path().join("root.key");
        let signing_path = dir.path().join("signing.key");
        SecretKey::generate(KeyKind::Root)
            .unwrap()
            .write_new(&root_path)
            .unwrap();
        let signing_pub = SecretKey::generate(KeyKind::Signing)
            .unwrap()
            .write_new(&signing_path)
            .unwrap();
        let root = SecretKey::load(&root_path, KeyKind::Root).unwrap();
        let signing = SecretKey::load(&signing_path, KeyKind::Signing).unwrap();
        let listed = PublicKey::load(&signing_pub).unwrap();
        let image_list = key_list(&root, 1, &[&listed], &[]);
        Fleet {
            dir,
            root,
            signing,
            image_list,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// What a box built from the image trusts.
    fn image_trust(&self) -> Trust {
        Trust::new(self.root.public(), &self.image_list).unwrap()
    }
}

fn key_list(
    root: &SecretKey,
    serial: u64,
    keys: &[&PublicKey],
    revoked: &[KeyId],
) -> SignedKeyList {
    let list = KeyList {
        serial,
        keys: keys
            .iter()
            .map(|key| ListedKey {
                id: key.id(),
                public_key: key.to_hex(),
                not_after: None,
            })
            .collect(),
        revoked: revoked.to_vec(),
    };
    SignedKeyList::sign(list, root).unwrap()
}

/// A slot's files: the root image (data blocks then a tree-sized tail, as the builder writes
/// it) made of four "programs", and two boot files. `agentd` picks the third program's bytes,
/// `kernel` the boot files'.
struct Slot {
    dir: PathBuf,
    data_blocks: u64,
}

fn make_slot(dir: &Path, agentd: u64, kernel: u64) -> Slot {
    fs::create_dir_all(dir).unwrap();
    let mut data = [
        noise(10, 700_000),
        noise(11, 300_000),
        noise(agentd, 500_000 + agentd as usize * 100),
        noise(13, 900_000),
    ]
    .concat();
    data.resize(data.len().div_ceil(4096) * 4096, 0);
    let data_blocks = data.len() as u64 / VERITY_BLOCK;
    data.extend(noise(
        agentd + 1000,
        (verity_tree_blocks(data_blocks) * VERITY_BLOCK) as usize,
    ));
    fs::write(dir.join("root.img"), &data).unwrap();
    fs::write(dir.join("vmlinuz"), noise(kernel, 400_000)).unwrap();
    fs::write(dir.join("initrd"), noise(kernel + 1, 200_000)).unwrap();
    Slot {
        dir: dir.to_owned(),
        data_blocks,
    }
}

/// `base`'s files with its "agentd" rebuilt as a compiler would after a small change: a byte
/// changed every 40 KB (moved code changes addresses all through a program), so every chunk
/// of it changes while a patch against the old one stays small.
fn rebuild_agentd(base: &Slot, dir: &Path) -> Slot {
    fs::create_dir_all(dir).unwrap();
    for name in ["vmlinuz", "initrd"] {
        fs::copy(base.dir.join(name), dir.join(name)).unwrap();
    }
    let mut root = fs::read(base.dir.join("root.img")).unwrap();
    let agentd = 1_000_000..1_500_000;
    for at in agentd.step_by(40_000) {
        root[at] ^= 0x5a;
    }
    fs::write(dir.join("root.img"), root).unwrap();
    Slot {
        dir: dir.to_owned(),
        data_blocks: base.data_blocks,
    }
}

fn bundle_input(slot: &Slot, version: &str, min_from: &str) -> BundleInput {
    BundleInput {
        board: BOARD.into(),
        version: Version::parse(version).unwrap(),
        min_from_version: Version::parse(min_from).unwrap(),
        created: NOW,
        build_id: "00112233445566aa".into(),
        kernel_cmdline: "console=tty0 console=ttyS0,115200 quiet panic=10".into(),
        chunker: ChunkerParams::DEFAULT,
        root: slot.dir.join("root.img"),
        verity: Verity {
            root_hash: Sha256Digest::of(b"tree top"),
            salt: "5a5a".into(),
            data_blocks: slot.data_blocks,
            hash_start_block: slot.data_blocks,
        },
        boot: vec![
            ("vmlinuz".into(), slot.dir.join("vmlinuz")),
            ("initrd".into(), slot.dir.join("initrd")),
        ],
        patch_from: Vec::new(),
    }
}

fn publish_to(
    fleet: &Fleet,
    bundle: &Path,
    channel: &str,
    key: &SecretKey,
    key_list: Option<&SignedKeyList>,
) -> Result<Published> {
    publish(&PublishRequest {
        bundle,
        repository: &fleet.repo(),
        channel,
        rollout_permille: 1000,
        key,
        key_list,
        now: NOW,
    })
}

/// The box: what it runs and what it has seen.
struct Box_ {
    board: &'static str,
    running: Version,
    last_serial: Option<u64>,
    force: bool,
}

impl Box_ {
    fn running(version: &str) -> Box_ {
        Box_ {
            board: BOARD,
            running: Version::parse(version).unwrap(),
            last_serial: None,
            force: false,
        }
    }
}

/// The box's whole update, against the repository: keys.json, the pointer, the manifest, the
/// chunks its running slot (`running`) lacks (downloaded into `downloads`, then `tamper`ed),
/// and the other slot (`target`) assembled only after every check passed.
fn update(
    fleet: &Fleet,
    who: &Box_,
    running: &Slot,
    target: &Path,
    tamper: impl FnOnce(&Path, &[ChunkRef]),
) -> Result<(CheckedManifest, u64)> {
    let repo = fleet.repo();
    let read = |rel: &str| fs::read(repo.join(rel)).unwrap();
    let mut trust = fleet.image_trust();
    if repo.join(layout::KEY_LIST).exists() {
        trust.offer(&SignedKeyList::parse(&read(layout::KEY_LIST))?)?;
    }
    let pointer = pointer::verify(
        &read("channels/stable.json"),
        &read("channels/stable.sig"),
        &trust,
        &PointerCheck {
            channel: "stable",
            board: who.board,
            last_serial: who.last_serial,
            now: NOW,
        },
    )?;
    assert!(pointer.in_wave(b"any box: the rollout is the whole fleet"));
    let manifest = pointer.verify_manifest(
        &read(&pointer.manifest),
        &read(&pointer.manifest_signature()),
        &trust,
        &UpdateCheck {
            board: who.board,
            running: &who.running,
            now: NOW,
            force: who.force,
        },
    )?;

    let mut index = ChunkIndex::new();
    for name in ["root.img", "vmlinuz", "initrd"] {
        index
            .add_file(&running.dir.join(name), None, manifest.chunker)
            .unwrap();
    }
    let plan = plan(&index, &manifest);
    let wanted = plan.download.clone();
    let downloads = fleet.path("downloads");
    let _ = fs::remove_dir_all(&downloads);
    fs::create_dir_all(&downloads).unwrap();
    for chunk in &wanted {
        fs::copy(
            repo.join(layout::chunk(&chunk.sha256)),
            downloads.join(chunk.sha256.to_hex()),
        )
        .unwrap();
    }
    tamper(&downloads, &wanted);
    let downloaded = check_downloads(&plan, &downloads)?;
    assert_eq!(downloaded, total_length(&wanted));

    fs::create_dir_all(target).unwrap();
    for artifact in manifest.artifacts() {
        let name = artifact.boot_path.unwrap_or("root.img");
        let mut file = fs::File::create(target.join(name)).unwrap();
        assemble(&artifact, &plan, &index, &downloads, &mut file)?;
    }
    Ok((manifest, downloaded))
}

/// A repository with 0.1.0 and then 0.2.0 (a new agentd) on the stable channel, and a box
/// running 0.1.0.
struct Published2 {
    fleet: Fleet,
    old: Slot,
    new: Slot,
    target: PathBuf,
}

fn two_versions() -> Published2 {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    let new = make_slot(&fleet.path("v2"), 14, 30);
    for (slot, version, bundle) in [(&old, "0.1.0", "bundle1"), (&new, "0.2.0", "bundle2")] {
        let out = write_bundle(
            &bundle_input(slot, version, "0.1.0"),
            &fleet.signing,
            &fleet.path(bundle),
        )
        .unwrap();
        assert_eq!(out.manifest.version, Version::parse(version).unwrap());
        publish_to(
            &fleet,
            &fleet.path(bundle),
            "stable",
            &fleet.signing,
            Some(&fleet.image_list),
        )
        .unwrap();
    }
    let target = fleet.path("slot-b");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("root.img"), UNTOUCHED).unwrap();
    Published2 {
        fleet,
        old,
        new,
        target,
    }
}

fn assert_untouched(target: &Path) {
    assert_eq!(fs::read(target.join("root.img")).unwrap(), UNTOUCHED);
    assert!(!target.join("vmlinuz").exists());
}

#[test]
fn round_trip_downloads_only_what_the_running_slot_lacks() {
    let p = two_versions();
    let (manifest, downloaded) = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(manifest.version, Version::parse("0.2.0").unwrap());
    for name in ["root.img", "vmlinuz", "initrd"] {
        assert_eq!(
            fs::read(p.target.join(name)).unwrap(),
            fs::read(p.new.dir.join(name)).unwrap(),
            "{name}"
        );
    }
    // The "agentd" region (~0.5 MB) and the tail that stands for the hash tree changed; the
    // rest of the ~2.5 MB root and both boot files came from the running slot.
    let root_size = manifest.root.size;
    assert!(downloaded >= 500_000, "{downloaded}");
    assert!(
        downloaded < 500_000 + 3 * 65_536 + 20_000 + 4 * 262_144,
        "{downloaded} of {root_size}"
    );
    let boot_bytes: u64 = manifest.boot.iter().map(|b| b.size).sum();
    assert!(downloaded < (root_size + boot_bytes) / 2);
}

/// Publishes `old` as 0.1.0 and `new` as 0.2.0 with a patch of the root from `patch_from`.
fn publish_patched(fleet: &Fleet, old: &Slot, new: &Slot, patch_from: &Slot) -> BundleOutput {
    let first = write_bundle(
        &bundle_input(old, "0.1.0", "0"),
        &fleet.signing,
        &fleet.path("bundle1"),
    );
    first.unwrap();
    publish_to(
        fleet,
        &fleet.path("bundle1"),
        "stable",
        &fleet.signing,
        None,
    )
    .unwrap();
    let mut input = bundle_input(new, "0.2.0", "0");
    input.patch_from = vec![("root".into(), patch_from.dir.join("root.img"))];
    let out = write_bundle(&input, &fleet.signing, &fleet.path("bundle2")).unwrap();
    publish_to(
        fleet,
        &fleet.path("bundle2"),
        "stable",
        &fleet.signing,
        None,
    )
    .unwrap();
    out
}

#[test]
fn a_patch_against_the_running_root_downloads_a_fraction_of_its_chunks() {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    let new = rebuild_agentd(&old, &fleet.path("v2"));
    let out = publish_patched(&fleet, &old, &new, &old);
    let patch = &out.manifest.patches[0];
    assert_eq!(out.manifest.patches.len(), 1);
    assert_eq!(patch.file, "root");
    assert_eq!(
        patch.from_sha256,
        Sha256Digest::of(&fs::read(old.dir.join("root.img")).unwrap())
    );
    let target = fleet.path("slot-b");
    let (manifest, downloaded) =
        update(&fleet, &Box_::running("0.1.0"), &old, &target, |_, _| {}).unwrap();
    for name in ["root.img", "vmlinuz", "initrd"] {
        assert_eq!(
            fs::read(target.join(name)).unwrap(),
            fs::read(new.dir.join(name)).unwrap(),
            "{name}"
        );
    }
    // Without the patch: every chunk of the 500 KB "agentd" changed.
    let mut index = ChunkIndex::new();
    index
        .add_file(&old.dir.join("root.img"), None, manifest.chunker)
        .unwrap();
    let chunks_only: u64 = manifest
        .root
        .chunks
        .iter()
        .filter(|chunk| !index.contains(&chunk.sha256))
        .map(|chunk| chunk.length as u64)
        .sum();
    assert!(chunks_only >= 480_000, "{chunks_only}");
    assert_eq!(downloaded, patch.size);
    assert!(
        downloaded < chunks_only / 20,
        "{downloaded} against {chunks_only}"
    );
}

#[test]
fn a_box_without_the_patchs_source_downloads_chunks() {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    let new = rebuild_agentd(&old, &fleet.path("v2"));
    publish_patched(&fleet, &old, &new, &old);
    // This box runs a build of 0.1.0 whose root differs (another "agentd").
    let other = make_slot(&fleet.path("v1-other"), 15, 30);
    let target = fleet.path("slot-b");
    let (_, downloaded) =
        update(&fleet, &Box_::running("0.1.0"), &other, &target, |_, _| {}).unwrap();
    assert_eq!(
        fs::read(target.join("root.img")).unwrap(),
        fs::read(new.dir.join("root.img")).unwrap()
    );
    assert!(downloaded >= 480_000, "{downloaded}");
}

#[test]
fn a_tampered_patch_is_refused_before_anything_is_written() {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    let new = rebuild_agentd(&old, &fleet.path("v2"));
    let out = publish_patched(&fleet, &old, &new, &old);
    let target = fleet.path("slot-b");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("root.img"), UNTOUCHED).unwrap();
    let patch_chunk = out.manifest.patches[0].chunks[0].sha256;
    let err = update(
        &fleet,
        &Box_::running("0.1.0"),
        &old,
        &target,
        |downloads, wanted| {
            assert!(wanted.iter().any(|chunk| chunk.sha256 == patch_chunk));
            let path = downloads.join(patch_chunk.to_hex());
            let mut bytes = fs::read(&path).unwrap();
            bytes[10] ^= 0x01;
            fs::write(&path, bytes).unwrap();
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::ChunkCorrupt { sha256, .. } if *sha256 == patch_chunk),
        "{err}"
    );
    assert_untouched(&target);
}

#[test]
fn a_patch_is_left_out_when_the_chunks_cost_less() {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    // A kernel-only update: the root is the same, so all its chunks are on the box already.
    let new = make_slot(&fleet.path("v2"), 12, 31);
    let out = publish_patched(&fleet, &old, &new, &old);
    assert!(out.manifest.patches.is_empty());
    let manifest = fs::read(fleet.path("bundle2").join(layout::BUNDLE_MANIFEST)).unwrap();
    assert!(!String::from_utf8(manifest).unwrap().contains("patches"));
}

#[test]
fn versions_share_chunk_files_in_the_repository() {
    let fleet = Fleet::new();
    let old = make_slot(&fleet.path("v1"), 12, 30);
    let new = make_slot(&fleet.path("v2"), 14, 30);
    let mut copied = Vec::new();
    for (slot, version, bundle) in [(&old, "0.1.0", "b1"), (&new, "0.2.0", "b2")] {
        write_bundle(
            &bundle_input(slot, version, "0.1.0"),
            &fleet.signing,
            &fleet.path(bundle),
        )
        .unwrap();
        let published =
            publish_to(&fleet, &fleet.path(bundle), "stable", &fleet.signing, None).unwrap();
        assert_eq!(published.pointer.serial, copied.len() as u64 + 1);
        copied.push(published);
    }
    assert_eq!(copied[0].chunks_present, 0);
    assert!(
        copied[1].chunks_present > copied[1].chunks_copied,
        "{:?}",
        copied[1]
    );
    // The same bundle again on another channel copies nothing and starts that channel at 1.
    let again = publish_to(&fleet, &fleet.path("b2"), "beta", &fleet.signing, None).unwrap();
    assert_eq!(again.chunks_copied, 0);
    assert_eq!(again.pointer.serial, 1);
    assert!(fleet.repo().join("channels/beta.sig").exists());
}

#[test]
fn a_tampered_chunk_is_refused_before_anything_is_written() {
    let p = two_versions();
    let err = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |downloads, wanted| {
            let path = downloads.join(wanted[0].sha256.to_hex());
            let mut bytes = fs::read(&path).unwrap();
            bytes[100] ^= 0x01;
            fs::write(&path, bytes).unwrap();
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::ChunkCorrupt { .. }), "{err}");
    assert_untouched(&p.target);
}

#[test]
fn a_truncated_or_missing_chunk_is_refused_before_anything_is_written() {
    let p = two_versions();
    let who = Box_::running("0.1.0");
    let err = update(&p.fleet, &who, &p.old, &p.target, |downloads, wanted| {
        let path = downloads.join(wanted[1].sha256.to_hex());
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::ChunkTruncated { expected, found, .. } if found + 1 == expected),
        "{err}"
    );
    assert_untouched(&p.target);

    let err = update(&p.fleet, &who, &p.old, &p.target, |downloads, wanted| {
        fs::remove_file(downloads.join(wanted.last().unwrap().sha256.to_hex())).unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, Error::ChunkMissing { .. }), "{err}");
    assert_untouched(&p.target);
}

/// A byte of the manifest changed on the server: the pointer's hash catches it; without the
/// pointer, the manifest's own signature does.
#[test]
fn a_tampered_manifest_is_refused() {
    let p = two_versions();
    let manifest_path = p.fleet.repo().join("manifests/0.2.0/manifest.json");
    let original = fs::read(&manifest_path).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let tampered = text.replacen("panic=10", "panic=99", 1).into_bytes();
    assert_ne!(tampered, original);
    fs::write(&manifest_path, &tampered).unwrap();
    let err = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::ManifestMismatch { .. }), "{err}");
    assert_untouched(&p.target);

    let signature = fs::read(p.fleet.repo().join("manifests/0.2.0/manifest.sig")).unwrap();
    let check = UpdateCheck {
        board: BOARD,
        running: &Version::parse("0.1.0").unwrap(),
        now: NOW,
        force: false,
    };
    let trust = p.fleet.image_trust();
    let err = manifest::verify(&tampered, &signature, &trust, &check).unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
    manifest::verify(&original, &signature, &trust, &check).unwrap();
}

#[test]
fn a_tampered_pointer_is_refused() {
    let p = two_versions();
    let path = p.fleet.repo().join("channels/stable.json");
    let text = fs::read_to_string(&path).unwrap();
    // Back to the old version's manifest, or to the whole fleet: either way a changed byte.
    fs::write(&path, text.replace("\"serial\": 2", "\"serial\": 9")).unwrap();
    let err = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err}");
    assert_untouched(&p.target);
}

#[test]
fn an_old_pointer_played_back_is_refused() {
    let p = two_versions();
    let mut who = Box_::running("0.1.0");
    who.last_serial = Some(3);
    let err = update(&p.fleet, &who, &p.old, &p.target, |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PointerReplayed {
                last: 3,
                offered: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_untouched(&p.target);
}

#[test]
fn a_key_the_list_does_not_name_is_refused() {
    let p = two_versions();
    let stranger = SecretKey::generate(KeyKind::Signing).unwrap();
    let slot = make_slot(&p.fleet.path("v3"), 15, 30);
    write_bundle(
        &bundle_input(&slot, "0.3.0", "0.1.0"),
        &stranger,
        &p.fleet.path("bundle3"),
    )
    .unwrap();
    // The publisher's check against the repository's list catches it first.
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("bundle3"),
        "stable",
        &stranger,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err}");

    // A repository without keys.json does not; the box does.
    fs::remove_file(p.fleet.repo().join(layout::KEY_LIST)).unwrap();
    publish_to(
        &p.fleet,
        &p.fleet.path("bundle3"),
        "stable",
        &stranger,
        None,
    )
    .unwrap();
    let err = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::UnknownKey { key_id, serial: 1, .. } if key_id == stranger.id()),
        "{err}"
    );
    assert_untouched(&p.target);
}

/// The vendor lost the signing key: key list 2 (signed by the root) revokes it and names a new
/// one. Boxes get it from keys.json; the old key's pointer is refused, the new key's taken.
#[test]
fn a_revoked_key_is_refused_and_its_successor_taken() {
    let p = two_versions();
    let successor = SecretKey::generate(KeyKind::Signing).unwrap();
    let rotated = key_list(
        &p.fleet.root,
        2,
        &[&successor.public()],
        &[p.fleet.signing.id()],
    );
    // Published by the lost key's holder under the new list: the publisher refuses.
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("bundle2"),
        "stable",
        &p.fleet.signing,
        Some(&rotated),
    )
    .unwrap_err();
    assert!(matches!(err, Error::KeyRevoked { serial: 2, .. }), "{err}");

    // The list reaches the repository; an old pointer signed by the revoked key stays there.
    fs::write(
        p.fleet.repo().join(layout::KEY_LIST),
        rotated.to_file_text(),
    )
    .unwrap();
    let err = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::KeyRevoked { serial: 2, .. }), "{err}");
    assert_untouched(&p.target);

    // Re-signed by the successor, it goes through.
    let slot = make_slot(&p.fleet.path("v3"), 16, 30);
    write_bundle(
        &bundle_input(&slot, "0.3.0", "0.1.0"),
        &successor,
        &p.fleet.path("bundle3"),
    )
    .unwrap();
    publish_to(
        &p.fleet,
        &p.fleet.path("bundle3"),
        "stable",
        &successor,
        None,
    )
    .unwrap();
    let (manifest, _) = update(
        &p.fleet,
        &Box_::running("0.1.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(manifest.key_id, successor.id());
}

#[test]
fn the_wrong_board_is_refused() {
    let p = two_versions();
    let mut who = Box_::running("0.1.0");
    who.board = "pi5";
    let err = update(&p.fleet, &who, &p.old, &p.target, |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, Error::WrongBoard { running, offered } if running == "pi5" && offered == BOARD),
        "{err}"
    );
    assert_untouched(&p.target);

    // The manifest says so too, on its own.
    let repo = p.fleet.repo();
    let err = manifest::verify(
        &fs::read(repo.join("manifests/0.2.0/manifest.json")).unwrap(),
        &fs::read(repo.join("manifests/0.2.0/manifest.sig")).unwrap(),
        &p.fleet.image_trust(),
        &UpdateCheck {
            board: "pi5",
            running: &Version::parse("0.1.0").unwrap(),
            now: NOW,
            force: true,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongBoard { .. }), "{err}");
}

#[test]
fn a_downgrade_is_refused_unless_forced() {
    let p = two_versions();
    let mut who = Box_::running("0.10.0");
    let err = update(&p.fleet, &who, &p.old, &p.target, |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::Downgrade { .. }), "{err}");
    assert_untouched(&p.target);

    let err = update(
        &p.fleet,
        &Box_::running("0.2.0"),
        &p.old,
        &p.target,
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
    assert_untouched(&p.target);

    who.force = true;
    update(&p.fleet, &who, &p.old, &p.target, |_, _| {}).unwrap();
    assert_eq!(
        fs::read(p.target.join("root.img")).unwrap(),
        fs::read(p.new.dir.join("root.img")).unwrap()
    );
}

#[test]
fn a_box_below_min_from_is_refused_even_when_forced() {
    let p = two_versions();
    let slot = make_slot(&p.fleet.path("v3"), 17, 31);
    write_bundle(
        &bundle_input(&slot, "0.3.0", "0.2.0"),
        &p.fleet.signing,
        &p.fleet.path("bundle3"),
    )
    .unwrap();
    publish_to(
        &p.fleet,
        &p.fleet.path("bundle3"),
        "stable",
        &p.fleet.signing,
        None,
    )
    .unwrap();
    let mut who = Box_::running("0.1.0");
    who.force = true;
    let err = update(&p.fleet, &who, &p.old, &p.target, |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, Error::BelowMinFrom { min_from, .. } if min_from == "0.2.0"),
        "{err}"
    );
    assert_untouched(&p.target);
    // A box on 0.2.0 takes it, and downloads the changed kernel and initrd whole.
    let (_, downloaded) = update(
        &p.fleet,
        &Box_::running("0.2.0"),
        &p.new,
        &p.target,
        |_, _| {},
    )
    .unwrap();
    assert!(downloaded >= 600_000, "{downloaded}");
}

#[test]
fn the_publisher_keeps_versions_boards_and_channels_straight() {
    let p = two_versions();
    let repo = p.fleet.repo();
    // Republishing an older version on the channel would offer boxes a downgrade.
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("bundle1"),
        "stable",
        &p.fleet.signing,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ChannelDowngrade { .. }), "{err}");

    // A different 0.2.0: published versions never change.
    let other = make_slot(&p.fleet.path("other"), 18, 30);
    write_bundle(
        &bundle_input(&other, "0.2.0", "0.1.0"),
        &p.fleet.signing,
        &p.fleet.path("other-bundle"),
    )
    .unwrap();
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("other-bundle"),
        "beta",
        &p.fleet.signing,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::VersionTaken { .. }), "{err}");

    // Another board's bundle belongs in another repository.
    let mut input = bundle_input(&other, "0.4.0", "0.1.0");
    input.board = "pi5".into();
    write_bundle(&input, &p.fleet.signing, &p.fleet.path("pi5-bundle")).unwrap();
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("pi5-bundle"),
        "stable",
        &p.fleet.signing,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::RepositoryBoard { .. }), "{err}");

    // An older key list than the repository's is refused.
    let newer = key_list(&p.fleet.root, 5, &[&p.fleet.signing.public()], &[]);
    fs::write(repo.join(layout::KEY_LIST), newer.to_file_text()).unwrap();
    let err = publish_to(
        &p.fleet,
        &p.fleet.path("bundle2"),
        "beta",
        &p.fleet.signing,
        Some(&p.fleet.image_list),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyListNotNewer {
                current: 5,
                offered: 1,
                ..
            }
        ),
        "{err}"
    );
    // None of the refusals moved the channel.
    let pointer =
        ChannelPointer::parse(&fs::read(repo.join("channels/stable.json")).unwrap()).unwrap();
    assert_eq!((pointer.serial, pointer.version.as_str()), (2, "0.2.0"));
    assert!(!repo.join("channels/beta.json").exists());
}

#[test]
fn a_damaged_bundle_is_not_published() {
    let fleet = Fleet::new();
    let slot = make_slot(&fleet.path("v1"), 12, 30);
    let bundle = fleet.path("bundle");
    let out = write_bundle(
        &bundle_input(&slot, "0.1.0", "0.1.0"),
        &fleet.signing,
        &bundle,
    )
    .unwrap();
    let chunk = out.manifest.root.chunks[2].sha256;
    let path = bundle.join("chunks").join(chunk.to_hex());
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x80;
    fs::write(&path, bytes).unwrap();
    let err = publish_to(&fleet, &bundle, "stable", &fleet.signing, None).unwrap_err();
    assert!(matches!(err, Error::ChunkCorrupt { .. }), "{err}");
    assert!(!fleet.repo().join("channels").exists());
}

/// Random bytes and mutated good documents into every parser of outside input (the cargo-fuzz
/// targets in fuzz/ do this at length with nightly): an error or a document that survives its
/// own round trip, never a panic.
#[test]
fn parsers_take_random_and_mutated_input() {
    let p = two_versions();
    let repo = p.fleet.repo();
    let seeds: Vec<Vec<u8>> = vec![
        fs::read(repo.join("manifests/0.2.0/manifest.json")).unwrap(),
        fs::read(repo.join("channels/stable.json")).unwrap(),
        fs::read(repo.join("channels/stable.sig")).unwrap(),
        fs::read(repo.join(layout::KEY_LIST)).unwrap(),
        p.fleet.signing.public().to_file_text().into_bytes(),
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for round in 0..3000 {
        let bytes: Vec<u8> = if round % 3 == 0 {
            let len = (next() % 600) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..=(next() % 4) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b"0\"{}[],:9-."[(next() % 11) as usize]),
                }
            }
            bytes
        };
        if let Ok(m) = Manifest::parse(&bytes) {
            assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
            parsed += 1;
        }
        if let Ok(ptr) = ChannelPointer::parse(&bytes) {
            assert_eq!(ChannelPointer::parse(&ptr.to_json()).unwrap(), ptr);
            parsed += 1;
        }
        if let Ok(list) = SignedKeyList::parse(&bytes) {
            assert_eq!(
                SignedKeyList::parse(list.to_file_text().as_bytes()).unwrap(),
                list
            );
            parsed += 1;
        }
        let _ = DetachedSignature::parse(&bytes, "fuzz");
        let _ = PublicKey::parse_file(&bytes, "fuzz");
    }
    // Some mutations (whitespace, a digit in a number) leave valid documents: those re-parse.
    assert!(parsed > 0);
}
