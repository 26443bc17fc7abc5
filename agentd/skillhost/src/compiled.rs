//! The engine, and compiled machine code kept between calls: Cranelift takes seconds for a
//! Python component (its interpreter is inside), loading the compiled form takes milliseconds.
//! The file is named by the component's sha256 and the engine's settings, and written once,
//! atomically, by a separate compile step; the process that runs the skill only reads it.

use crate::Error;
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

/// Where the compiled form of `wasm` lives in `compiled_dir`:
///
/// ```text
/// compiled/<sha256 of the component>-<engine settings>.cwasm      the machine code
/// compiled/<sha256 of the component>-<engine settings>.lock       held while it is compiled
/// compiled/<sha256 of the component>-<engine settings>.partial.N  being written by process N
/// ```
pub fn path(engine: &Engine, compiled_dir: &Path, wasm: &[u8]) -> PathBuf {
    let name = format!(
        "{}-{}.cwasm",
        carapace_skills::sandbox_protocol::component_digest(wasm),
        settings_tag(engine)
    );
    compiled_dir.join(name)
}

/// The engine's settings as they go into a compiled file's name: another wasmtime, or other
/// settings, cannot load what this one compiled.
fn settings_tag(engine: &Engine) -> String {
    let mut settings = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    format!("{:016x}", settings.finish())
}

/// Takes the compile lock of `compiled` (blocking until whoever holds it is done): a call and
/// agentd's Prepare may want the same component at once, and one compile is minutes on a slow
/// board. Under the lock, partial files of the same component are a dead compile's: removed.
pub fn lock(compiled: &Path) -> Result<std::fs::File, Error> {
    let dir = compiled.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let path = compiled.with_extension("lock");
    let file = std::fs::File::create(&path).map_err(Error::io("create", &path))?;
    file.lock().map_err(Error::io("lock", &path))?;
    let partial_prefix = format!("{}.partial.", file_stem(compiled));
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&partial_prefix)
        {
            std::fs::remove_file(entry.path()).map_err(Error::io("remove", &entry.path()))?;
        }
    }
    Ok(file)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes from `compiled_dir` every file but those of the components in `keep` (sha256, hex)
/// compiled by this engine's settings; how many went. After an update the old wasmtime's
/// code is all garbage, and a removed or replaced skill's too.
pub fn prune(engine: &Engine, compiled_dir: &Path, keep: &[String]) -> Result<u64, Error> {
    if let Some(bad) = keep
        .iter()
        .find(|sha| sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::Request(format!("{bad:?} is not a sha256")));
    }
    let tag = settings_tag(engine);
    let kept: Vec<String> = keep.iter().map(|sha| format!("{sha}-{tag}.")).collect();
    let entries = match std::fs::read_dir(compiled_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(Error::io("list", compiled_dir)(err)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", compiled_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kept.iter().any(|prefix| name.starts_with(prefix.as_str())) {
            continue;
        }
        std::fs::remove_file(entry.path()).map_err(Error::io("remove", &entry.path()))?;
        removed += 1;
    }
    Ok(removed)
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
    // One compile of a component at a time (`lock`); the process id keeps a dead compile's
    // partial file apart from the next one's until the next takes the lock and removes it.
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    let mut file = std::fs::File::create(&partial).map_err(Error::io("create", &partial))?;
    file.write_all(bytes)
        .map_err(Error::io("write", &partial))?;
    file.sync_all().map_err(Error::io("sync", &partial))?;
    std::fs::rename(&partial, path).map_err(Error::io("rename", &partial))?;
    let dir_file = std::fs::File::open(dir).map_err(Error::io("open", dir))?;
    dir_file.sync_all().map_err(Error::io("sync", dir))
}
