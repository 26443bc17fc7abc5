//! The real local inference engine inside this test process: carapace-infer's API on a free
//! loopback port with all-MiniLM-L6-v2, Silero VAD, Piper's voice and PP-OCRv4 (with ONNX
//! Runtime) and Whisper tiny.en,
//! fetched into the Carapace cache on the first run (~/.cache/carapace/models) and reused
//! after. One engine for every test that wants it, a second one that also describes
//! pictures, with the engine's tiny SmolVLM test checkpoint as a signed model pack, and a third
//! with a pack store, where the owner's packs arrive.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::path::PathBuf;

use board_support::local_inference::{
    MEMORY_EMBEDDING_MODEL, OCR_MODEL, SPEECH_MODEL, VOICE_ACTIVITY_MODEL, VOICE_MODEL,
};
use carapace_infer::{Engine, EngineConfig};
use carapace_models::{PackRequest, RunsOn, make_pack};
use carapace_update::{KeyKind, SecretKey, Trust};

/// The engine's URL (`http://127.0.0.1:<port>`), started on first use.
pub fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start(None, None))
}

/// An engine whose image also carries Whisper base (multilingual), which voice notes then go
/// to.
pub fn multilingual_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start_over(None, None, &[MULTILINGUAL]))
}

/// The model a recipe adds for speech in other languages than English.
const MULTILINGUAL: &str = "whisper-base";

/// The keys the test packs are signed with, and what the engines trust.
fn test_keys() -> (SecretKey, Trust) {
    let root = SecretKey::from_seed(KeyKind::Root, &[1; 32]);
    let signing = SecretKey::from_seed(KeyKind::Signing, &[2; 32]);
    let trust = Trust::of_keys(&root, &[&signing]).expect("the test keys");
    (signing, trust)
}

/// The tiny SmolVLM checkpoint as a pack `tiny-smolvlm` `version` in `dir`, signed by `key`.
pub fn tiny_vlm_pack(dir: &std::path::Path, version: &str, key: &SecretKey) -> PathBuf {
    let checkpoint =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infer/tests/data/vlm");
    make_pack(&PackRequest {
        model_dir: &checkpoint,
        name: "tiny-smolvlm",
        version,
        capability: "image_description",
        runs_on: RunsOn::Candle,
        key,
        out_dir: dir,
    })
    .expect("the tiny SmolVLM as a pack")
    .dir
}

/// The tiny SmolVLM pack as a tar, signed with the key the engines trust or, when
/// `trusted` is false, with another.
pub fn tiny_vlm_tar(version: &str, trusted: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a folder for the pack");
    let key = match trusted {
        true => test_keys().0,
        false => SecretKey::from_seed(KeyKind::Signing, &[3; 32]),
    };
    let pack = tiny_vlm_pack(dir.path(), version, &key);
    let tar = carapace_models::write_pack_tar(&pack, dir.path()).expect("the pack's tar");
    std::fs::read(tar).expect("the pack's tar")
}

/// An engine with no packs yet and a pack store (the engine's URL and the store's folder).
pub fn store_url() -> &'static (String, PathBuf) {
    static URL: OnceLock<(String, PathBuf)> = OnceLock::new();
    URL.get_or_init(|| {
        let store = tempfile::tempdir()
            .expect("a folder for the store")
            .keep()
            .join("packs");
        let url = start(None, Some((store.clone(), test_keys().1)));
        (url, store)
    })
}

/// An engine that also describes pictures: infer's tiny random-weight SmolVLM checkpoint
/// (its words are arbitrary, but they are the model's) as a pack signed with a test key the
/// engine trusts.
pub fn vision_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a folder for the pack").keep();
        let (signing, trust) = test_keys();
        tiny_vlm_pack(&dir, "1.0.0", &signing);
        start(Some((dir, trust)), None)
    })
}

/// A folder of links to the cache's models as an image carries them: the cache holds every
/// pinned model, the image all but the optional ones its recipe does not add.
fn image_models(cache: &std::path::Path, optional: &[&str]) -> PathBuf {
    let lock = carapace_infer::ModelLock::pinned().expect("the models lock");
    let left_out: Vec<String> = [MULTILINGUAL]
        .iter()
        .filter(|name| !optional.contains(name))
        .map(|name| {
            lock.model(name)
                .expect("a pinned model")
                .unpacked_dir_name()
        })
        .collect();
    let dir = tempfile::tempdir().expect("a folder for the models").keep();
    for entry in std::fs::read_dir(cache).expect("the cache's models folder") {
        let entry = entry.expect("a cache entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let scratch = name.starts_with('.');
        if entry.path().is_dir() && !scratch && !left_out.contains(&name) {
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).expect("a link");
        }
    }
    dir
}

/// Starts an engine with the pinned models, the packs in a folder trusted by `packs`' keys,
/// and a pack store trusting `store`'s.
fn start(packs: Option<(PathBuf, Trust)>, store: Option<(PathBuf, Trust)>) -> String {
    start_over(packs, store, &[])
}

/// As [`start`], with the optional models in `optional` too: an image carries the models
/// every image does and those its recipe adds.
fn start_over(
    packs: Option<(PathBuf, Trust)>,
    store: Option<(PathBuf, Trust)>,
    optional: &[&str],
) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (models_dir, listener) = runtime.block_on(async {
        for model in [
            MEMORY_EMBEDDING_MODEL,
            VOICE_ACTIVITY_MODEL,
            SPEECH_MODEL,
            VOICE_MODEL,
            OCR_MODEL,
        ]
        .iter()
        .chain(optional)
        {
            carapace_infer::fetch_pinned(model)
                .await
                .expect("the pinned models (downloaded into the cache on the first run)");
        }
        carapace_infer::fetch_onnx_runtime()
            .await
            .expect("the pinned ONNX Runtime (downloaded into the cache on the first run)");
        let cache = carapace_infer::models_dir().expect("the cache's models folder");
        let models_dir = image_models(&cache, optional);
        let listener = carapace_infer::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("a loopback port for the engine");
        (models_dir, listener)
    });
    let mut engine = Engine::new(EngineConfig {
        models_dir,
        // libtest's threads exist already, so candle's count cannot be pinned here: the engine
        // is told the count candle takes from this environment (Embedder::load checks it).
        threads: carapace_infer::cpu_threads_in_use(),
        idle_unload: Duration::from_secs(3600),
        onnx_runtime: Default::default(),
    })
    .expect("the engine");
    if let Some((dir, trust)) = packs {
        let lines = engine.add_packs(&[dir], || Ok(trust));
        assert!(
            lines.iter().all(|line| !line.contains("left out")),
            "{lines:?}"
        );
    }
    if let Some((dir, trust)) = store {
        let lines = engine
            .open_pack_store(dir, || Ok(trust))
            .expect("the pack store");
        assert!(lines.is_empty(), "{lines:?}");
    }
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || runtime.block_on(carapace_infer::serve(listener, Arc::new(engine))));
    url
}

/// A loopback URL where nothing listens (a port freed a moment ago).
pub fn closed_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}
