//! Model packs in the engine: all-MiniLM-L6-v2's pinned files made into a pack signed with a
//! test key; the engine offers the pack's model beside the pinned ones and embeds with it,
//! and refuses a pack whose key the box does not trust, whose capability it does not have, or
//! whose files changed after the engine started, while the other models keep working. Packs
//! the owner adds arrive as tars in the pack store: checked whole before they are offered,
//! replaced by a newer version, kept across restarts, and removed on request.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_infer::{Capability, Engine, EngineConfig, Error, ModelSource};
use carapace_models::{PackRequest, RunsOn, make_pack};
use carapace_update::{KeyKind, SecretKey, Trust};

const PINNED: &str = "all-minilm-l6-v2";

struct Lab {
    _dir: tempfile::TempDir,
    packs: PathBuf,
    models_dir: PathBuf,
    pinned_dir: PathBuf,
    signing: SecretKey,
    root: SecretKey,
}

impl Lab {
    fn trust(&self) -> Trust {
        Trust::of_keys(&self.root, &[&self.signing]).unwrap()
    }

    fn pack(&self, name: &str, capability: &str, key: &SecretKey) -> PathBuf {
        make_pack(&PackRequest {
            model_dir: &self.pinned_dir,
            name,
            version: "1.0.0",
            capability,
            runs_on: RunsOn::Candle,
            key,
            out_dir: &self.packs,
        })
        .unwrap()
        .dir
    }

    fn bare_engine(&self, threads: NonZeroUsize) -> Engine {
        Engine::new(EngineConfig {
            models_dir: self.models_dir.clone(),
            threads,
            idle_unload: Duration::from_secs(3600),
            onnx_runtime: Default::default(),
        })
        .unwrap()
    }

    fn engine(&self, threads: NonZeroUsize) -> (Engine, Vec<String>) {
        let engine = self.bare_engine(threads);
        let lines = engine.add_packs(&[self.packs.clone(), self.packs.join("absent")], || {
            Ok(self.trust())
        });
        (engine, lines)
    }
}

fn line_for<'a>(lines: &'a [String], dir: &Path) -> &'a str {
    lines
        .iter()
        .find(|line| line.contains(&dir.display().to_string()))
        .unwrap_or_else(|| panic!("no line for {}: {lines:?}", dir.display()))
}

fn main() {
    let threads = NonZeroUsize::new(1).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the first statement of main; no other thread exists yet.
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pinned_dir = runtime
        .block_on(carapace_infer::fetch_pinned(PINNED))
        .unwrap_or_else(|error| panic!("fetching the pinned model: {error}"));
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    let lab = Lab {
        models_dir: pinned_dir.parent().unwrap().to_path_buf(),
        pinned_dir,
        packs,
        _dir: dir,
        signing: SecretKey::from_seed(KeyKind::Signing, &[2; 32]),
        root: SecretKey::from_seed(KeyKind::Root, &[1; 32]),
    };
    let good = lab.pack("minilm-pack", "embeddings", &lab.signing);
    let stranger = SecretKey::from_seed(KeyKind::Signing, &[9; 32]);
    let untrusted = lab.pack("minilm-stranger", "embeddings", &stranger);
    let unknown = lab.pack("minilm-painter", "painting", &lab.signing);
    let twin = lab.pack(PINNED, "embeddings", &lab.signing);

    let (engine, lines) = lab.engine(threads);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        line_for(&lines, &good),
        format!(
            "model pack minilm-pack 1.0.0 (embeddings, signed by key {}) from {}",
            lab.signing.id(),
            good.display()
        )
    );
    let why = line_for(&lines, &untrusted);
    assert!(
        why.starts_with(&format!("model pack {}: ", untrusted.display()))
            && why.contains("its signature does not hold")
            && why.ends_with("; it was left out"),
        "{why}"
    );
    let why = line_for(&lines, &unknown);
    assert!(
        why.contains(
            "capability \"painting\" is not one this engine has (embeddings, voice_activity, \
             transcription, speech, ocr, image_description)"
        ),
        "{why}"
    );
    let why = line_for(&lines, &twin);
    assert!(
        why.contains(&format!("the engine has a model named {PINNED} already")),
        "{why}"
    );
    println!("test only_a_trusted_pack_with_a_known_capability_and_a_new_name_is_offered ... ok");

    let ids: Vec<String> = engine.status().into_iter().map(|s| s.id).collect();
    assert!(ids.contains(&"minilm-pack".to_string()), "{ids:?}");
    assert!(!ids.contains(&"minilm-stranger".to_string()), "{ids:?}");
    assert_eq!(
        engine.capability("minilm-pack").unwrap(),
        Capability::Embeddings
    );
    let text = ["a pack is checked before it is loaded"];
    let (from_pack, _) = engine.embed("minilm-pack", &text).unwrap();
    let (from_pin, _) = engine.embed(PINNED, &text).unwrap();
    assert_eq!(from_pack, from_pin);
    println!("test the_pack_model_embeds_as_the_pinned_files_do ... ok");

    // Changed after the engine started: the next load hashes the files and refuses.
    let (engine, _) = lab.engine(threads);
    let weights = good.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    match engine.embed("minilm-pack", &text) {
        Err(Error::ModelUnavailable { model, reason }) => {
            assert_eq!(model, "minilm-pack");
            assert!(
                reason.contains("model.safetensors has sha256 ")
                    && reason.contains("changed after signing"),
                "{reason}"
            );
        }
        other => panic!("a changed pack was loaded: {other:?}"),
    }
    let status = engine
        .status()
        .into_iter()
        .find(|s| s.id == "minilm-pack")
        .unwrap();
    assert!(!status.loaded && status.last_error.is_some(), "{status:?}");
    assert!(engine.embed(PINNED, &text).is_ok());
    println!("test a_pack_changed_after_start_is_refused_at_load_and_the_rest_works ... ok");

    // No keys to check packs with: every pack is left out, with the reason.
    let engine = lab.bare_engine(threads);
    let lines = engine.add_packs(std::slice::from_ref(&lab.packs), || {
        carapace_infer::load_trust(
            Path::new("/nonexistent/root.pub"),
            Path::new("/nonexistent/keys.json"),
        )
    });
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.contains("the update keys: ") && line.contains("[update]")),
        "{lines:?}"
    );
    println!("test without_update_keys_every_pack_is_left_out_with_why ... ok");

    added_packs_are_checked_whole_replaced_kept_and_removed(&lab, threads);
    println!("test added_packs_are_checked_whole_replaced_kept_and_removed ... ok");
    println!("test result: ok. 5 passed");
}

/// The folders in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn added_packs_are_checked_whole_replaced_kept_and_removed(lab: &Lab, threads: NonZeroUsize) {
    let work = tempfile::tempdir().unwrap();
    // Each pack as `carapace models add --tar` makes it.
    let made = std::cell::Cell::new(0);
    let tar_of = |name: &str, version: &str, key: &SecretKey| {
        made.set(made.get() + 1);
        let out = work.path().join(made.get().to_string());
        std::fs::create_dir(&out).unwrap();
        let pack = make_pack(&PackRequest {
            model_dir: &lab.pinned_dir,
            name,
            version,
            capability: "embeddings",
            runs_on: RunsOn::Candle,
            key,
            out_dir: &out,
        })
        .unwrap()
        .dir;
        std::fs::read(carapace_models::write_pack_tar(&pack, &out).unwrap()).unwrap()
    };
    let store = work.path().join("data/infer/packs");
    let mut engine = lab.bare_engine(threads);
    let lines = engine
        .open_pack_store(store.clone(), || Ok(lab.trust()))
        .unwrap();
    assert!(lines.is_empty() && store.is_dir(), "{lines:?}");

    let v1 = tar_of("minilm-added", "1.0.0", &lab.signing);
    let added = engine.add_pack_tar(v1.as_slice()).unwrap();
    assert_eq!(
        (added.id.as_str(), added.version.as_str(), &added.replaced),
        ("minilm-added", "1.0.0", &None)
    );
    assert_eq!(added.capability, Capability::Embeddings);
    let status = |engine: &Engine| engine.status().into_iter().find(|s| s.id == "minilm-added");
    let offered = status(&engine).expect("the added pack is offered at once");
    assert_eq!(offered.source, ModelSource::AddedPack);
    assert_eq!(offered.version.as_deref(), Some("1.0.0"));
    let text = ["a pack can arrive while the box runs"];
    assert_eq!(
        engine.embed("minilm-added", &text).unwrap().0,
        engine.embed(PINNED, &text).unwrap().0
    );
    assert_eq!(listing(&store), ["minilm-added-1.0.0"]);

    // Refused, each for its reason, leaving the store as it was.
    let mut changed = tar_of("minilm-added", "2.0.0", &lab.signing);
    // The middle of the tar is inside the weights (90 of its 91 MB).
    let weights = changed.len() / 2;
    changed[weights] ^= 1;
    let stranger = SecretKey::from_seed(KeyKind::Signing, &[9; 32]);
    let refusals: [(&str, Vec<u8>, &str); 4] = [
        ("a changed file", changed, "changed after signing"),
        (
            "an untrusted key",
            tar_of("minilm-added", "3.0.0", &stranger),
            "its signature does not hold",
        ),
        (
            "a pinned model's name",
            tar_of(PINNED, "9.0.0", &lab.signing),
            "the image has a model named all-minilm-l6-v2 already",
        ),
        (
            "half a tar",
            v1[..v1.len() / 2].to_vec(),
            "model.safetensors ends after ",
        ),
    ];
    for (what, tar, why) in refusals {
        let error = engine.add_pack_tar(tar.as_slice()).unwrap_err().to_string();
        assert!(error.contains(why), "{what}: {error}");
        // What was wrong with the pack, not where it was unpacked for the check.
        assert!(
            error.starts_with("the model pack was not added: ") && !error.contains(".incoming-"),
            "{what}: {error}"
        );
        assert_eq!(listing(&store), ["minilm-added-1.0.0"], "{what}");
        assert_eq!(status(&engine).unwrap().version.as_deref(), Some("1.0.0"));
    }

    // A newer version replaces it, on disk too.
    let added = engine
        .add_pack_tar(tar_of("minilm-added", "2.0.0", &lab.signing).as_slice())
        .unwrap();
    assert_eq!(added.replaced.as_deref(), Some("1.0.0"));
    assert_eq!(listing(&store), ["minilm-added-2.0.0"]);
    assert_eq!(status(&engine).unwrap().version.as_deref(), Some("2.0.0"));

    // A restart offers it again; what a power cut left half-made is cleared away.
    drop(engine);
    std::fs::create_dir(store.join(".incoming-1-0")).unwrap();
    std::fs::write(store.join(".incoming-1-0/pack.json"), b"{").unwrap();
    let mut engine = lab.bare_engine(threads);
    let lines = engine
        .open_pack_store(store.clone(), || Ok(lab.trust()))
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("model pack minilm-added 2.0.0 (embeddings, signed by key "));
    assert_eq!(listing(&store), ["minilm-added-2.0.0"]);
    assert_eq!(status(&engine).unwrap().source, ModelSource::AddedPack);

    // Removed on request; the image's models cannot be.
    assert!(matches!(
        engine.remove_added_pack(PINNED),
        Err(Error::NotRemovable { .. })
    ));
    assert!(matches!(
        engine.remove_added_pack("nothing-here"),
        Err(Error::UnknownModel { .. })
    ));
    assert_eq!(engine.remove_added_pack("minilm-added").unwrap(), "2.0.0");
    assert!(status(&engine).is_none());
    assert!(listing(&store).is_empty());
    assert!(engine.embed(PINNED, &text).is_ok());
}
