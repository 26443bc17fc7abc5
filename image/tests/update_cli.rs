//! The update commands as a vendor runs them, through the `carapace` binary: keygen, keys
//! sign, bundle (from a build's slot files; a stand-in build, not a real one), publish twice
//! (a new version shares chunks with the old), update-size; and the refusals' messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use carapace_image::slot_files::{SlotInfo, UpdateTrust, write};
use carapace_update::manifest::verity_tree_blocks;
use carapace_update::{ChannelPointer, Manifest, Sha256Digest, Verity};

const RECIPE: &str = r#"
name = "smoke"
board = "x86-64"
hostname = "carapace"
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
[update]
key_list = "keys.json"
server = "https://updates.example.com/x86-64"
"#;

fn carapace(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carapace"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn failed(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "should have failed: {stderr}");
    stderr
}

/// A stand-in for a finished build of the recipe: slot files and sbom.json in out/smoke/.
fn fake_build(workspace: &Path, version: &str, agentd: u8, trust: &UpdateTrust) {
    let out = workspace.join("out/smoke");
    let data_blocks = 300;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut data: Vec<u8> = (0..data_blocks * 4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    // "agentd": 200 KiB in the middle differ between the builds.
    data[400_000..600_000].fill(agentd);
    let tree = vec![agentd; verity_tree_blocks(data_blocks as u64) as usize * 4096];
    let info = SlotInfo {
        recipe: "smoke".into(),
        board: "x86-64".into(),
        version: version.into(),
        build_id: "00112233aabbccdd".into(),
        kernel_cmdline: "console=tty0 quiet panic=10".into(),
        verity: Verity {
            root_hash: Sha256Digest::of(&[agentd]),
            salt: "00ff".into(),
            data_blocks: data_blocks as u64,
            hash_start_block: data_blocks as u64,
        },
        update_trust: Some(trust.clone()),
        boot_files: vec!["vmlinuz".into(), "initrd".into()],
    };
    let boot = [
        ("vmlinuz".to_string(), vec![1u8; 300_000]),
        ("initrd".to_string(), vec![2u8; 100_000]),
    ];
    write(&out, &info, &data, &tree, &boot).unwrap();
    std::fs::write(out.join("sbom.json"), "{}").unwrap();
}

#[test]
fn keygen_keys_bundle_publish_and_update_size() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    for sub in ["init", "image"] {
        std::fs::create_dir(ws.join(sub)).unwrap();
    }
    std::fs::write(ws.join("Cargo.toml"), "[workspace]\n").unwrap();

    let stderr = ok(carapace(ws, &["keygen", "--root", "root.key"]));
    let root_hex = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("root_key = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no root_key line: {stderr}"))
        .to_owned();
    let secret = std::fs::read_to_string(ws.join("root.key")).unwrap();
    assert!(!stderr.contains(&secret[secret.find("secret_key").unwrap() + 14..][..64]));
    ok(carapace(ws, &["keygen", "signing.key"]));
    let stderr = failed(carapace(ws, &["keygen", "signing.key"]));
    assert!(stderr.contains("already exists"), "{stderr}");
    ok(carapace(
        ws,
        &[
            "keys",
            "sign",
            "--root",
            "root.key",
            "--key",
            "signing.key.pub",
            "--serial",
            "1",
            "--out",
            "keys.json",
        ],
    ));
    let stderr = failed(carapace(
        ws,
        &[
            "keys",
            "sign",
            "--root",
            "signing.key",
            "--key",
            "signing.key.pub",
            "--serial",
            "1",
            "--out",
            "x.json",
        ],
    ));
    assert!(stderr.contains("keygen --root"), "{stderr}");

    // The recipe names the version each build below makes (`carapace bundle` refuses a build
    // of another version than the recipe's).
    let recipe = |version: &str| {
        RECIPE
            .replace(
                "[update]\n",
                &format!("[update]\nroot_key = \"{root_hex}\"\n"),
            )
            .replace(
                "[debian]\n",
                &format!("version = \"{version}\"\n[debian]\n"),
            )
    };
    let trust = UpdateTrust {
        root_key: root_hex.clone(),
        key_list_sha256: Sha256Digest::of(&std::fs::read(ws.join("keys.json")).unwrap()),
    };
    let repo = ws.join("site");
    let bundle_dir = ws.join("out/smoke/bundle");
    let mut chunk_counts = Vec::new();
    for (version, agentd) in [("0.1.0", 7u8), ("0.2.0", 9)] {
        std::fs::write(ws.join("smoke.toml"), recipe(version)).unwrap();
        fake_build(ws, version, agentd, &trust);
        let stderr = ok(carapace(
            ws,
            &["bundle", "--recipe", "smoke.toml", "--key", "signing.key"],
        ));
        assert!(stderr.contains("from the existing build"), "{stderr}");
        let manifest =
            Manifest::parse(&std::fs::read(bundle_dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest.version.as_str(), version);
        let stderr = ok(carapace(
            ws,
            &[
                "publish",
                "--bundle",
                "out/smoke/bundle",
                "--to",
                "site",
                "--channel",
                "stable",
                "--rollout",
                "0.25",
                "--key",
                "signing.key",
                "--key-list",
                "keys.json",
            ],
        ));
        assert!(stderr.contains("key list serial 1"), "{stderr}");
        chunk_counts.push(std::fs::read_dir(repo.join("chunks")).unwrap().count());
    }
    let pointer =
        ChannelPointer::parse(&std::fs::read(repo.join("channels/stable.json")).unwrap()).unwrap();
    assert_eq!(pointer.version.as_str(), "0.2.0");
    assert_eq!((pointer.serial, pointer.rollout_permille), (2, 250));
    assert!(repo.join("keys.json").exists());
    // The second version added only the chunks its changed 200 KiB and tail are in.
    let added = chunk_counts[1] - chunk_counts[0];
    assert!(added > 0 && added < chunk_counts[0] / 2, "{chunk_counts:?}");

    // Refusals with what to do.
    let stderr = failed(carapace(
        ws,
        &[
            "publish",
            "--bundle",
            "out/smoke/bundle",
            "--to",
            "site",
            "--channel",
            "stable",
            "--rollout",
            "1.5",
            "--key",
            "signing.key",
        ],
    ));
    assert!(stderr.contains("fraction from 0 to 1"), "{stderr}");
    ok(carapace(ws, &["keygen", "stranger.key"]));
    let stderr = failed(carapace(
        ws,
        &["bundle", "--recipe", "smoke.toml", "--key", "stranger.key"],
    ));
    assert!(stderr.contains("not in the recipe's key list"), "{stderr}");
    // The recipe's version moved on since the build: the bundle would carry the old one.
    std::fs::write(ws.join("smoke.toml"), recipe("0.3.0")).unwrap();
    let stderr = failed(carapace(
        ws,
        &["bundle", "--recipe", "smoke.toml", "--key", "signing.key"],
    ));
    assert!(stderr.contains("version is now 0.3.0"), "{stderr}");

    // update-size between two slot directories: the old build's is gone (the bundle command
    // reuses out/smoke/slot), so measure the 0.2.0 slot against a copy with agentd changed.
    let old_slot = ws.join("old-slot");
    std::fs::create_dir(&old_slot).unwrap();
    for name in ["root.img", "vmlinuz", "initrd"] {
        std::fs::copy(ws.join("out/smoke/slot").join(name), old_slot.join(name)).unwrap();
    }
    let new_root: PathBuf = ws.join("out/smoke/slot/root.img");
    let mut changed = std::fs::read(&new_root).unwrap();
    changed[450_000..470_000].fill(0xee);
    std::fs::write(old_slot.join("root.img"), changed).unwrap();
    let output = carapace(
        ws,
        &[
            "update-size",
            "--old",
            "old-slot",
            "--new",
            "out/smoke/slot",
        ],
    );
    ok(Output {
        status: output.status,
        stdout: vec![],
        stderr: output.stderr.clone(),
    });
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("full image, raw"), "{table}");
    assert!(table.contains("delta: chunks + chunk list"), "{table}");
}

/// `carapace models add`: a model folder becomes a pack signed by the signing key, which
/// verifies with the key list; the root key, a missing folder and a second pack of the same
/// version are refused with what to do.
#[test]
fn models_add_makes_a_pack_the_key_list_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    ok(carapace(ws, &["keygen", "--root", "root.key"]));
    ok(carapace(ws, &["keygen", "signing.key"]));
    ok(carapace(
        ws,
        &[
            "keys",
            "sign",
            "--root",
            "root.key",
            "--key",
            "signing.key.pub",
            "--serial",
            "1",
            "--out",
            "keys.json",
        ],
    ));
    std::fs::create_dir(ws.join("model")).unwrap();
    std::fs::write(ws.join("model/model.safetensors"), b"weights").unwrap();
    std::fs::write(ws.join("model/config.json"), b"{}").unwrap();
    let add = |key: &str, model: &str| {
        carapace(
            ws,
            &[
                "models",
                "add",
                model,
                "--name",
                "tiny-bert",
                "--version",
                "2.1",
                "--capability",
                "embeddings",
                "--key",
                key,
                "--out",
                ".",
            ],
        )
    };
    let stderr = failed(add("root.key", "model"));
    assert!(stderr.contains("carapace: error: "), "{stderr}");
    assert!(!ws.join("tiny-bert-2.1").exists());
    let stderr = failed(add("signing.key", "no-such-folder"));
    assert!(
        stderr.contains("carapace: error: making the model pack: listing no-such-folder: ")
            && stderr.contains("no-such-folder"),
        "{stderr}"
    );
    let output = add("signing.key", "model");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = ok(output);
    assert_eq!(stdout.trim(), "./tiny-bert-2.1");
    assert!(stderr.contains("[[model_pack]]"), "{stderr}");
    let root = carapace_update::PublicKey::load(&ws.join("root.key.pub")).unwrap();
    let list = carapace_update::SignedKeyList::parse(&std::fs::read(ws.join("keys.json")).unwrap())
        .unwrap();
    let trust = carapace_update::Trust::new(root, &list).unwrap();
    let pack = carapace_models::verify_pack(&ws.join("tiny-bert-2.1"), &trust, 0).unwrap();
    assert_eq!(pack.manifest.files.len(), 2);
    assert_eq!(pack.manifest.capability, "embeddings");
    let stderr = failed(add("signing.key", "model"));
    assert!(stderr.contains("exists already"), "{stderr}");

    // A speech pack's voice that the split cannot lay out goes in whole, and the command says why.
    std::fs::create_dir(ws.join("voice")).unwrap();
    std::fs::write(ws.join("voice/en_US-x.onnx"), b"not a model").unwrap();
    std::fs::write(ws.join("voice/en_US-x.onnx.json"), b"{}").unwrap();
    let output = carapace(
        ws,
        &[
            "models",
            "add",
            "voice",
            "--name",
            "x-voice",
            "--version",
            "1",
            "--capability",
            "speech",
            "--runs-on",
            "onnxruntime",
            "--key",
            "signing.key",
            "--out",
            ".",
        ],
    );
    let stderr = ok(output);
    assert!(
        stderr.contains("carapace: the voice en_US-x.onnx went in whole (the box runs it as one model, not split across its cores): the split could not lay it out: not an ONNX model"),
        "{stderr}"
    );
    let pack = carapace_models::verify_pack(&ws.join("x-voice-1"), &trust, 0).unwrap();
    assert_eq!(pack.manifest.files.len(), 2);
}
