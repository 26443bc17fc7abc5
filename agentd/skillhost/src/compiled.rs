//! The engine, and compiled machine code kept between calls: Cranelift takes seconds for a
//! Python component (its interpreter is inside), loading the compiled form takes milliseconds.
//! The file is named by the component's sha256 and the engine's settings, and written once,
//! atomically, by a separate compile step; the process that runs the skill only reads it.

use crate::Error;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// Cranelift with epoch interruption (the deadline); everything else as wasmtime's defaults.
pub fn engine() -> Result<Engine, Error> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|err| Error::Wasm(format!("could not start wasmtime: {err:#}")))
}

/// Where the compiled form of `wasm` lives in `compiled_dir`.
pub fn path(engine: &Engine, compiled_dir: &Path, wasm: &[u8]) -> PathBuf {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    let name = format!(
        "{}-{:016x}.cwasm",
        hex::encode(Sha256::digest(wasm)),
        settings.finish()
    );
    compiled_dir.join(name)
}

/// Compiles the component `wasm` into `compiled`. Runs in a child process of its own
/// (`carapace-skillhost compile`), the only one that may write there: Cranelift's worker
/// threads never share a process with a skill's code.
pub fn compile(engine: &Engine, wasm: &[u8], compiled: &Path) -> Result<(), Error> {
    let bytes = engine.precompile_component(wasm).map_err(|err| {
        Error::Wasm(format!(
            "the skill's component is not one wasmtime can compile: {err:#}"
        ))
    })?;
    write_atomically(compiled, &bytes)
}

/// Loads a compiled component from `file`, opened at `compiled` before the process was
/// confined.
pub fn load(engine: &Engine, mut file: std::fs::File, compiled: &Path) -> Result<Component, Error> {
    // wasmtime's Component loads from a path or from bytes, not from an open file.
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(Error::io("read", compiled))?;
    // SAFETY: the file is one `compile` wrote with this engine's settings (its name says so)
    // in a directory only the skill host's compile step writes; wasmtime still checks its
    // header and settings and refuses a file that does not match.
    #[allow(unsafe_code)]
    let loaded = unsafe { Component::deserialize(engine, &bytes) };
    loaded.map_err(|err| {
        Error::Wasm(format!(
            "could not load the compiled component {}: {err:#}",
            compiled.display()
        ))
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    // Two calls of a new skill may compile it at once: each writes its own partial file, and
    // the second rename replaces the first's identical result.
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    let mut file = std::fs::File::create(&partial).map_err(Error::io("create", &partial))?;
    file.write_all(bytes)
        .map_err(Error::io("write", &partial))?;
    file.sync_all().map_err(Error::io("sync", &partial))?;
    std::fs::rename(&partial, path).map_err(Error::io("rename", &partial))?;
    let dir_file = std::fs::File::open(dir).map_err(Error::io("open", dir))?;
    dir_file.sync_all().map_err(Error::io("sync", dir))
}
