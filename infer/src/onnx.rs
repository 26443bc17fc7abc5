//! ONNX Runtime, loaded at run time from the library pinned in models.lock (ort's load-dynamic:
//! nothing is downloaded or linked at build time). One environment per process with one global
//! thread pool sized to the cores the engine owns, spinning off: on a small box that shares its
//! cores with agentd, idle threads that spin steal the cores the link and the LLM calls need.
//!
//! Two builds are pinned: the default one (ONNX Runtime's CPU provider) and, for Intel boxes,
//! the one with OpenVINO's execution provider and OpenVINO's CPU, GPU and NPU plugins beside
//! it. With the second, every session asks OpenVINO first, on the Intel GPU when there is one
//! and on the CPU otherwise, and ONNX Runtime's CPU provider runs what OpenVINO does not take.
//! Where each model runs, and why, is recorded per model file for the engine's status: a
//! session OpenVINO could not make falls back to the CPU provider, and says so.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};

use carapace_models::{ModelLock, fetch_pinned, onnx_runtime_pin, openvino_runtime_pin};

use crate::error::{Error, Result};

/// Which pinned build of ONNX Runtime to load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnnxRuntimeKind {
    /// ONNX Runtime's own CPU provider.
    #[default]
    Default,
    /// The onnxruntime-openvino build: OpenVINO on the Intel GPU or the CPU.
    OpenVino,
}

/// The library OpenVINO's execution provider lives in, beside libonnxruntime.
pub const OPENVINO_PROVIDER: &str = "libonnxruntime_providers_openvino.so";

/// Where a model's sessions run, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// "cpu", "openvino:CPU", "openvino:GPU".
    pub device: String,
    pub reason: String,
}

/// The OpenVINO device the sessions ask for.
#[derive(Clone, Debug)]
struct OpenVinoDevice {
    name: &'static str,
    reason: String,
}

/// The loaded ONNX Runtime. Sessions made through it share its thread pool.
pub struct OnnxRuntime {
    library: PathBuf,
    threads: NonZeroUsize,
    // ort keeps only a weak reference to the environment: it lives as long as this value.
    environment: Environment,
    openvino: Option<OpenVinoDevice>,
    /// Each model file's placement, as its last session was made.
    placements: Mutex<BTreeMap<PathBuf, Placement>>,
}

/// How a session is made, beyond every graph optimisation and the shared pool.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// A plan of the working memory kept per input shape (ONNX Runtime's memory pattern):
    /// worth it where the shapes repeat; where each input has a length of its own (a
    /// sentence's phonemes) it only adds a block per length.
    pub memory_pattern: bool,
    /// Where OpenVINO would run the model on the CPU, ONNX Runtime's CPU provider does, for
    /// this reason (a measurement of the model on both); the Intel GPU still gets it.
    pub not_on_openvinos_cpu: Option<&'static str>,
    /// Runs on the thread that calls it, not on the shared pool: for a model whose runs the
    /// caller spreads over the pool's count of threads itself, each on a session of its own
    /// (a Piper voice's sentences and pieces of them).
    pub on_the_callers_thread: bool,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            memory_pattern: true,
            not_on_openvinos_cpu: None,
            on_the_callers_thread: false,
        }
    }
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
        // The OpenVINO build carries its provider beside the runtime.
        let openvino = library
            .parent()
            .is_some_and(|dir| dir.join(OPENVINO_PROVIDER).is_file())
            .then(|| openvino_device(Path::new("/sys/class/drm")));
        Ok(OnnxRuntime {
            library: library.to_path_buf(),
            threads,
            environment,
            openvino,
            placements: Mutex::new(BTreeMap::new()),
        })
    }

    /// Where the sessions of the model files under `dir` run: one placement per distinct
    /// answer, by file name.
    pub fn placements_under(&self, dir: &Path) -> Vec<Placement> {
        let placements = self
            .placements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut found: Vec<Placement> = Vec::new();
        for (model, placement) in placements.iter() {
            if model.starts_with(dir) && !found.contains(placement) {
                found.push(placement.clone());
            }
        }
        found
    }

    /// The process's runtime, loaded on the first call. ONNX Runtime allows one environment
    /// per process, so engines in one process (tests start several) share the first one, with
    /// its thread pool; a different library is refused.
    pub fn shared(library: &Path, threads: NonZeroUsize) -> Result<Arc<OnnxRuntime>> {
        static SHARED: Mutex<Option<Arc<OnnxRuntime>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        // The same file reached by another path (a link to the models) is the same library.
        let same_file = |a: &Path, b: &Path| {
            let (a, b) = (std::fs::canonicalize(a), std::fs::canonicalize(b));
            matches!((a, b), (Ok(a), Ok(b)) if a == b)
        };
        match shared.as_ref() {
            Some(runtime) if runtime.library == library || same_file(&runtime.library, library) => {
                Ok(Arc::clone(runtime))
            }
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
        self.session_with(model, SessionOptions::default())
    }

    /// Options for runs after which a session's CPU memory arena hands back the memory no
    /// output holds (ONNX Runtime's arena shrinkage): for models whose inputs vary in size (a
    /// photo, a page, its lines), whose largest run's working memory the arena would otherwise
    /// keep. Within a run the arena serves the tensors without a malloc each. Without the
    /// arena (as rapidocr runs them), glibc kept freed tensors in its per-thread heaps between
    /// runs: PP-OCR's peak reading one 900 x 360 page was 439-583 MiB from run to run, with the
    /// arena shrunk after each run 350-375 MiB, in the same time within this machine's noise
    /// (kept, not shrunk: 667 MiB, 0.8x the time).
    pub fn returning_arena_runs(&self) -> Result<RunOptions> {
        let failed = |e: ort::Error| Error::OnnxRuntime {
            action: "setting up the run options of",
            library: self.library.clone(),
            reason: e.to_string(),
        };
        let mut options = RunOptions::new().map_err(failed)?;
        options
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(failed)?;
        Ok(options)
    }

    /// A session for `model` made as `options` say.
    pub fn session_with(&self, model: &Path, options: SessionOptions) -> Result<Session> {
        let failed = |e: &dyn std::fmt::Display| Error::OnnxModel {
            path: model.to_path_buf(),
            reason: e.to_string(),
        };
        if !model.is_file() {
            return Err(Error::MissingModelFile {
                path: model.to_path_buf(),
            });
        }
        let cpu = || ort::ep::CPU::default().with_arena_allocator(true).build();
        let make = |providers: Vec<ort::ep::ExecutionProviderDispatch>| {
            let builder = Session::builder(&self.environment)?
                .with_optimization_level(GraphOptimizationLevel::All)?
                .with_memory_pattern(options.memory_pattern)?
                .with_execution_providers(providers)?;
            let mut builder = if options.on_the_callers_thread {
                // One intra-op thread is the caller's own: the session starts no threads.
                builder
                    .with_independent_thread_pool()?
                    .with_intra_threads(1)?
                    .with_inter_threads(1)?
            } else {
                builder
            };
            builder.commit_from_file(model)
        };
        let openvino = self
            .openvino
            .as_ref()
            .filter(|device| device.name != "CPU" || options.not_on_openvinos_cpu.is_none());
        let (session, placement) = match openvino {
            None if self.openvino.is_some() => (
                make(vec![cpu()]).map_err(|e| failed(&e))?,
                Placement {
                    device: "cpu".into(),
                    reason: format!(
                        "ONNX Runtime's CPU provider, not OpenVINO on the CPU: {}",
                        options.not_on_openvinos_cpu.unwrap_or_default()
                    ),
                },
            ),
            None => (
                make(vec![cpu()]).map_err(|e| failed(&e))?,
                Placement {
                    device: "cpu".into(),
                    reason: "ONNX Runtime's CPU provider (the default build)".into(),
                },
            ),
            Some(device) => {
                let openvino = ort::ep::OpenVINO::default()
                    .with_device_type(device.name)
                    .with_num_threads(self.threads.get())
                    .build()
                    .error_on_failure();
                match make(vec![openvino, cpu()]) {
                    Ok(session) => (
                        session,
                        Placement {
                            device: format!("openvino:{}", device.name),
                            reason: format!(
                                "{}; ONNX Runtime's CPU provider runs any operator OpenVINO \
                                 does not take",
                                device.reason
                            ),
                        },
                    ),
                    Err(openvino_error) => (
                        make(vec![cpu()]).map_err(|e| failed(&e))?,
                        Placement {
                            device: "cpu".into(),
                            reason: format!(
                                "OpenVINO on the {} could not run it ({}), so ONNX Runtime's \
                                 CPU provider does",
                                device.name,
                                last_line(&openvino_error.to_string())
                            ),
                        },
                    ),
                }
            }
        };
        self.placements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(model.to_path_buf(), placement);
        // Loading parsed the model's protobuf into heap blocks (its weights among them) that
        // the session has copied and freed; malloc keeps such free memory for the next step
        // (malloc.rs), where it would stay for the model's lifetime. Measured: Piper's voice
        // 139.5 MiB once loaded, 110.8 after this; its peak speaking 212 MiB, 189 after it.
        crate::malloc::return_freed_memory();
        Ok(session)
    }
}

/// The last line of OpenVINO's error that says something: the one that names the cause, after
/// a stack of C++ frames.
fn last_line(error: &str) -> &str {
    error
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or(error)
}

/// The device OpenVINO is asked for: the Intel GPU when a DRM render node with Intel's PCI
/// vendor id is in `drm` (/sys/class/drm), else the CPU. The NPU is left out: it compiles
/// only fixed input shapes, and OCR and speech take inputs of any size.
fn openvino_device(drm: &Path) -> OpenVinoDevice {
    let mut nodes: Vec<String> = std::fs::read_dir(drm)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("renderD"))
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    for node in nodes {
        let vendor =
            std::fs::read_to_string(drm.join(&node).join("device/vendor")).unwrap_or_default();
        if vendor.trim() == "0x8086" {
            return OpenVinoDevice {
                name: "GPU",
                reason: format!("OpenVINO on the Intel GPU (/dev/dri/{node})"),
            };
        }
    }
    OpenVinoDevice {
        name: "CPU",
        reason: format!(
            "OpenVINO on the CPU: no Intel GPU render node in {}",
            drm.display()
        ),
    }
}

/// The path of libonnxruntime pinned for this CPU architecture, fetched into the cache when it
/// is not there yet.
pub async fn fetch_onnx_runtime() -> Result<PathBuf> {
    fetch_runtime(&onnx_runtime_pin()).await
}

/// The path of the OpenVINO build's libonnxruntime (x86-64 only), fetched when missing.
pub async fn fetch_openvino_runtime() -> Result<PathBuf> {
    let name = openvino_runtime_pin().ok_or_else(|| Error::OnnxRuntime {
        action: "finding",
        library: PathBuf::from("onnxruntime-openvino"),
        reason: format!(
            "no OpenVINO build of ONNX Runtime is pinned for {}",
            std::env::consts::ARCH
        ),
    })?;
    fetch_runtime(&name).await
}

async fn fetch_runtime(name: &str) -> Result<PathBuf> {
    let lock = ModelLock::pinned()?;
    let file = lock.model(name)?.files[0].clone();
    Ok(fetch_pinned(name).await?.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openvino_takes_an_intel_gpu_and_otherwise_the_cpu() {
        let drm = tempfile::tempdir().unwrap();
        assert_eq!(openvino_device(drm.path()).name, "CPU");
        let node = |name: &str, vendor: &str| {
            let device = drm.path().join(name).join("device");
            std::fs::create_dir_all(&device).unwrap();
            std::fs::write(device.join("vendor"), format!("{vendor}\n")).unwrap();
        };
        node("renderD128", "0x1002");
        assert_eq!(openvino_device(drm.path()).name, "CPU", "an AMD GPU");
        node("renderD129", "0x8086");
        let device = openvino_device(drm.path());
        assert_eq!(device.name, "GPU");
        assert_eq!(
            device.reason,
            "OpenVINO on the Intel GPU (/dev/dri/renderD129)"
        );
    }
}
