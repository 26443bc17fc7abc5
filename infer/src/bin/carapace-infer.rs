//! carapace-infer: the local inference engine's service (`serve`), its self-report (`probe`),
//! and `fetch`, which puts the pinned models into the cache on a machine that may download.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use carapace_infer::{Engine, EngineConfig, ModelLock, OnnxRuntimeKind};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "carapace-infer", about = "Carapace's local inference engine")]
struct Cli {
    /// The folder of unpacked models (default: the cache's models/, where `fetch` puts them).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// CPU threads for inference (default: every core this process may use).
    #[arg(long, global = true)]
    threads: Option<NonZeroUsize>,
    /// The ONNX Runtime build the ONNX models run on: default (its CPU provider) or openvino
    /// (OpenVINO on the Intel GPU when there is one, else on the CPU; x86-64).
    #[arg(long, global = true, value_enum, default_value_t = OnnxRuntimeArg::Default)]
    onnx_runtime: OnnxRuntimeArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnnxRuntimeArg {
    Default,
    Openvino,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local API (OpenAI's /v1/embeddings and /v1/models, and voice activity).
    Serve {
        /// A loopback address; port 0 picks a free port (printed once listening).
        #[arg(long, default_value = board_support::local_inference::API_ADDRESS)]
        listen: SocketAddr,
        /// Drop a model after it sat unused this many seconds.
        #[arg(long, default_value_t = 300)]
        idle_unload_secs: u64,
        /// A folder of signed model packs (`carapace models add`) to offer beside the pinned
        /// models; may be repeated. A folder that does not exist holds none.
        #[arg(long = "packs", value_name = "DIR")]
        packs: Vec<PathBuf>,
        /// Where the packs the owner adds (POST /v1/packs) are kept, on a writable disk;
        /// created if missing. Without it packs cannot be added or removed while running.
        #[arg(long, value_name = "DIR")]
        pack_store: Option<PathBuf>,
        /// The update root public key that packs are checked with.
        #[arg(long, value_name = "FILE", default_value = carapace_update::layout::IMAGE_ROOT_KEY)]
        update_root_key: PathBuf,
        /// The key list, signed by that root key, naming the keys that may sign packs.
        #[arg(long, value_name = "FILE", default_value = carapace_update::layout::IMAGE_KEY_LIST)]
        update_key_list: PathBuf,
    },
    /// Say what this box has and how fast each model runs on it.
    Probe,
    /// Download and unpack every model and runtime pinned in models.lock into the cache.
    Fetch,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
    // SAFETY: first thing in main; no other thread exists yet.
    #[allow(unsafe_code)]
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    carapace_infer::reuse_freed_memory();
    // Computations run one at a time (the engine's lock): a few blocking threads are plenty,
    // and the service's pids_max counts every thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("carapace-infer: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let onnx_runtime = match cli.onnx_runtime {
        OnnxRuntimeArg::Default => OnnxRuntimeKind::Default,
        OnnxRuntimeArg::Openvino => OnnxRuntimeKind::OpenVino,
    };
    match runtime.block_on(run(cli.command, cli.models, threads, onnx_runtime)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("carapace-infer: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    models: Option<PathBuf>,
    threads: NonZeroUsize,
    onnx_runtime: OnnxRuntimeKind,
) -> carapace_infer::Result<()> {
    let models_dir = match models {
        Some(dir) => dir,
        None => carapace_infer::models_dir()?,
    };
    let config = |idle_unload| EngineConfig {
        models_dir: models_dir.clone(),
        threads,
        idle_unload,
        onnx_runtime,
    };
    match command {
        Command::Serve {
            listen,
            idle_unload_secs,
            packs,
            pack_store,
            update_root_key,
            update_key_list,
        } => {
            let mut engine = Engine::new(config(Duration::from_secs(idle_unload_secs)))?;
            let trust = || carapace_infer::load_trust(&update_root_key, &update_key_list);
            for line in engine.add_packs(&packs, trust) {
                println!("carapace-infer: {line}");
            }
            if let Some(dir) = pack_store {
                // The pinned models and the image's packs serve even if the store cannot.
                match engine.open_pack_store(dir.clone(), trust) {
                    Ok(lines) => lines
                        .iter()
                        .for_each(|line| println!("carapace-infer: {line}")),
                    Err(error) => eprintln!(
                        "carapace-infer: the pack store {}: {error}; packs cannot be added",
                        dir.display()
                    ),
                }
            }
            let engine = Arc::new(engine);
            let listener = carapace_infer::bind(listen).await?;
            let address =
                listener
                    .local_addr()
                    .map_err(|source| carapace_infer::Error::Listen {
                        address: listen,
                        source,
                    })?;
            println!("carapace-infer: listening on http://{address}");
            carapace_infer::serve(listener, engine).await;
            Ok(())
        }
        Command::Probe => {
            let engine = Engine::new(config(Duration::MAX))?;
            let report = tokio::task::spawn_blocking(move || carapace_infer::probe_report(&engine))
                .await
                .unwrap_or_else(|join| format!("the probe stopped: {join}\n"));
            print!("{report}");
            Ok(())
        }
        Command::Fetch => {
            let lock = ModelLock::pinned()?;
            let client = carapace_infer::download_client()?;
            let this_arch = carapace_infer::onnx_runtime_pin();
            for name in lock.names() {
                if name.starts_with("onnxruntime-") && name != this_arch {
                    continue;
                }
                let dir =
                    carapace_infer::fetch_model(&client, lock.model(name)?, &models_dir).await?;
                println!("{name}: {}", dir.display());
            }
            Ok(())
        }
    }
}
