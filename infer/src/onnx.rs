//! ONNX Runtime, loaded at run time from the library pinned in models.lock (ort's load-dynamic:
//! nothing is downloaded or linked at build time). One environment per process with one global
//! thread pool sized to the cores the engine owns, spinning off: on a small box that shares its
//! cores with agentd, idle threads that spin steal the cores the link and the LLM calls need.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use carapace_models::{ModelLock, fetch_pinned, onnx_runtime_pin};

use crate::error::{Error, Result};

/// The loaded ONNX Runtime. Sessions made through it share its thread pool.
pub struct OnnxRuntime {
    library: PathBuf,
    threads: NonZeroUsize,
    // ort keeps only a weak reference to the environment: it lives as long as this value.
    environment: Environment,
}

impl OnnxRuntime {
    /// Loads libonnxruntime from `library` and starts its thread pool of `threads` threads.
    /// Only one runtime may be loaded per process.
    pub fn load(library: &Path, threads: NonZeroUsize) -> Result<OnnxRuntime> {
        let failed = |action: &'static str| {
            let library = library.to_path_buf();
            move |reason: String| Error::OnnxRuntime {
                action,
                library,
                reason,
            }
        };
        if !library.is_file() {
            return Err(failed("loading")("the file does not exist".into()));
        }
        // A static glibc binary's dlopen loads a second C library beside the one linked in,
        // and ONNX Runtime crashes the process on its first call (seen: SIGSEGV). Refuse
        // instead, so that the rest of the engine keeps working.
        if cfg!(target_feature = "crt-static") {
            return Err(failed("loading")(
                "this engine is a static binary, which cannot load a shared library; ONNX \
                 models need a dynamically linked build"
                    .into(),
            ));
        }
        // The library first: every other ort call goes through the API it loads.
        let builder = ort::init_from(library).map_err(|e| failed("loading")(e.to_string()))?;
        let pool = GlobalThreadPoolOptions::default()
            .with_intra_threads(threads.get())
            .and_then(|pool| pool.with_inter_threads(1))
            .and_then(|pool| pool.with_spin_control(false))
            .map_err(|e| failed("setting up the thread pool of")(e.to_string()))?;
        let environment = builder
            .with_name("carapace-infer")
            .with_global_thread_pool(pool)
            .build()
            .map_err(|e| failed("starting")(e.to_string()))?;
        Ok(OnnxRuntime {
            library: library.to_path_buf(),
            threads,
            environment,
        })
    }

    /// The process's runtime, loaded on the first call. ONNX Runtime allows one environment
    /// per process, so engines in one process (tests start several) share the first one, with
    /// its thread pool; a different library is refused.
    pub fn shared(library: &Path, threads: NonZeroUsize) -> Result<Arc<OnnxRuntime>> {
        static SHARED: Mutex<Option<Arc<OnnxRuntime>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        match shared.as_ref() {
            Some(runtime) if runtime.library == library => Ok(Arc::clone(runtime)),
            Some(runtime) => Err(Error::OnnxRuntime {
                action: "loading",
                library: library.to_path_buf(),
                reason: format!(
                    "this process runs ONNX Runtime from {} already, and it allows one per process",
                    runtime.library.display()
                ),
            }),
            None => {
                let runtime = Arc::new(OnnxRuntime::load(library, threads)?);
                *shared = Some(Arc::clone(&runtime));
                Ok(runtime)
            }
        }
    }

    /// The library this runtime was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The size of the shared thread pool.
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
    }

    /// A session for the ONNX model in `model`, on the shared pool, with every graph
    /// optimisation ONNX Runtime has.
    pub fn session(&self, model: &Path) -> Result<Session> {
        self.open(model, true)
    }

    /// A session as `session` makes it, but without ONNX Runtime's memory arena, which keeps
    /// the largest input's working memory after the run: for models whose inputs vary in size
    /// (a photo, a page), as rapidocr runs them.
    pub fn session_without_arena(&self, model: &Path) -> Result<Session> {
        self.open(model, false)
    }

    fn open(&self, model: &Path, arena: bool) -> Result<Session> {
        let failed = |e: &dyn std::fmt::Display| Error::OnnxModel {
            path: model.to_path_buf(),
            reason: e.to_string(),
        };
        if !model.is_file() {
            return Err(Error::MissingModelFile {
                path: model.to_path_buf(),
            });
        }
        Session::builder(&self.environment)
            .map_err(|e| failed(&e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| failed(&e))?
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(arena).build()])
            .map_err(|e| failed(&e))?
            .commit_from_file(model)
            .map_err(|e| failed(&e))
    }
}

/// The path of libonnxruntime pinned for this CPU architecture, fetched into the cache when it
/// is not there yet.
pub async fn fetch_onnx_runtime() -> Result<PathBuf> {
    let name = onnx_runtime_pin();
    let lock = ModelLock::pinned()?;
    let file = lock.model(&name)?.files[0].clone();
    Ok(fetch_pinned(&name).await?.join(file))
}
