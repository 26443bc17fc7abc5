//! The real local inference engine inside this test process: carapace-infer's API on a free
//! loopback port with all-MiniLM-L6-v2, Silero VAD and Piper's voice (with ONNX Runtime) and
//! Whisper tiny.en,
//! fetched into the Carapace cache on the first run (~/.cache/carapace/models) and reused
//! after. One engine for every test that wants it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use board_support::local_inference::{
    MEMORY_EMBEDDING_MODEL, SPEECH_MODEL, VOICE_ACTIVITY_MODEL, VOICE_MODEL,
};
use carapace_infer::{Engine, EngineConfig};

/// The engine's URL (`http://127.0.0.1:<port>`), started on first use.
pub fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(start)
}

fn start() -> String {
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
        ] {
            carapace_infer::fetch_pinned(model)
                .await
                .expect("the pinned models (downloaded into the cache on the first run)");
        }
        carapace_infer::fetch_onnx_runtime()
            .await
            .expect("the pinned ONNX Runtime (downloaded into the cache on the first run)");
        let models_dir = carapace_infer::models_dir().expect("the cache's models folder");
        let listener = carapace_infer::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("a loopback port for the engine");
        (models_dir, listener)
    });
    let engine = Engine::new(EngineConfig {
        models_dir,
        // libtest's threads exist already, so candle's count cannot be pinned here: the engine
        // is told the count candle takes from this environment (Embedder::load checks it).
        threads: carapace_infer::cpu_threads_in_use(),
        idle_unload: Duration::from_secs(3600),
    })
    .expect("the engine");
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
