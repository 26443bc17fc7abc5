//! carapace-skillhost: one process per tool call into a skill's WebAssembly component. In the
//! image it is a service of its own ([`service`]: its own uid, a cgroup with memory and pids
//! limits, no network) that agentd asks over a Unix socket; each call it accepts runs in a new
//! process. A call can also come on stdin from whoever started the host (the tests, the bench).
//! Either way the host compiles the component once (a child process, `compile`, keeps the
//! machine code), confines itself (Landlock, seccomp, rlimits: [`sandbox`]), runs the call in
//! wasmtime with the call's memory limit and deadline ([`run`]), relays the skill's HTTP
//! requests to agentd, and reports how it ended.

mod channel;
pub mod compiled;
mod error;
pub mod run;
pub mod sandbox;
pub mod service;
mod syscalls;

pub use channel::Channel;
pub use error::Error;

use carapace_skills::sandbox_protocol::{Call, FromHost, Outcome, Stop, ToHost};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The compile step's argument (then the compiled file's path; the component on stdin).
pub const COMPILE_ARG: &str = "compile";
/// A call the service accepted: the argument, then the service's state directory.
pub const SERVED_CALL_ARG: &str = "call";

/// Answers the one call on stdin (a host started by hand, the tests, the bench): the component
/// is read from the path the call names. Errors are ones agentd cannot be told about (the
/// channel itself failed); everything else ends as a Finished message.
pub fn serve_one(mut channel: Channel) -> Result<(), Error> {
    let call = match channel.receive()? {
        ToHost::Call(call) => call,
        _ => return Err(Error::Request("a request other than a call".into())),
    };
    let component = File::open(&call.component).map_err(Error::io("open", &call.component));
    answer(&call, component, channel)
}

/// Answers the call the service accepted on this process's stdin, a connection from agentd:
/// the component comes open with the call (carapace_skills::handoff), and the compiled code and
/// the skill's scratch directory are the service's, in `state_dir`.
pub fn serve_connection(state_dir: &Path) -> Result<(), Error> {
    let stdin = std::io::stdin();
    let (line, component) =
        carapace_skills::handoff::receive_call(stdin.as_fd()).map_err(Error::Channel)?;
    let request: ToHost =
        serde_json::from_slice(&line).map_err(|err| Error::Request(err.to_string()))?;
    let mut channel = Channel::new(BufReader::new(stdin), std::io::stdout());
    let mut call = match request {
        ToHost::Call(call) => call,
        ToHost::Forget { skill } => {
            let scratch = scratch_dir(state_dir, &skill)?;
            match std::fs::remove_dir_all(&scratch) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io("remove", &scratch)(err)),
            }
            return channel.send(&FromHost::Finished(Outcome::Answer(String::new())));
        }
        ToHost::Prepare { .. } => {
            let compiled_dir = state_dir.join("compiled");
            let prepared = component
                .ok_or_else(|| Error::Request("Prepare came without the component".into()))
                .and_then(|component| {
                    let engine = compiled::engine()?;
                    let component = File::from(component);
                    ensure_compiled(
                        &engine,
                        component,
                        &compiled_dir,
                        Path::new("the component"),
                    )
                });
            return channel.send(&match prepared {
                Ok((_, compiled)) => FromHost::Prepared { compiled },
                Err(err) => unusable(&err),
            });
        }
        ToHost::Prune { keep } => {
            let pruned = compiled::engine()
                .and_then(|engine| compiled::prune(&engine, &state_dir.join("compiled"), &keep));
            return channel.send(&match pruned {
                Ok(removed) => FromHost::Pruned { removed },
                Err(err) => unusable(&err),
            });
        }
        ToHost::Fetched(_) => {
            return Err(Error::Request("an HTTP answer before any call".into()));
        }
    };
    call.compiled_dir = state_dir.join("compiled");
    let component = match component {
        Some(component) => scratch_dir(state_dir, &call.skill).and_then(|scratch| {
            call.scratch = scratch;
            make_private_dir(&call.scratch).map(|()| File::from(component))
        }),
        None => Err(Error::Request(
            "the call came without its component's descriptor".into(),
        )),
    };
    answer(&call, component, channel)
}

/// How a request the host could not carry out ends: Finished, with why.
fn unusable(err: &Error) -> FromHost {
    FromHost::Finished(Outcome::Stopped(Stop::Unusable {
        detail: err.to_string(),
    }))
}

/// Skill `skill`'s scratch directory in the service's state directory: `skill` must be a
/// skill's name, not a path.
fn scratch_dir(state_dir: &Path, skill: &str) -> Result<std::path::PathBuf, Error> {
    let plain = !skill.is_empty()
        && skill
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match plain {
        true => Ok(state_dir.join("scratch").join(skill)),
        false => Err(Error::Request(format!("{skill:?} is not a skill's name"))),
    }
}

fn make_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(Error::io("create", dir))
}

fn answer(call: &Call, component: Result<File, Error>, mut channel: Channel) -> Result<(), Error> {
    let (outcome, mut channel) = match component.and_then(|file| prepare(call, file)) {
        Ok((engine, component, compiled)) => {
            channel.send(&FromHost::Running { compiled })?;
            run::call(&engine, &component, call, channel)
        }
        Err(err) => (
            Outcome::Stopped(Stop::Unusable {
                detail: err.to_string(),
            }),
            channel,
        ),
    };
    channel.send(&FromHost::Finished(outcome))
}

/// Compiles the component if need be (in a child process; says whether), confines this process
/// and loads the compiled component.
fn prepare(
    call: &Call,
    component: File,
) -> Result<(wasmtime::Engine, wasmtime::component::Component, bool), Error> {
    let engine = compiled::engine()?;
    let (compiled, compile) =
        ensure_compiled(&engine, component, &call.compiled_dir, &call.component)?;
    let compiled_file = File::open(&compiled).map_err(Error::io("open", &compiled))?;
    sandbox::confine_for_running(call)?;
    let component = compiled::load(&engine, compiled_file, &compiled)?;
    Ok((engine, component, compile))
}

/// The compiled form of `component` (`named` in messages) in `compiled_dir`, compiled now if it
/// is not there yet (in a child process; says whether). A compile of the same component
/// already under way is waited for, not done twice.
fn ensure_compiled(
    engine: &wasmtime::Engine,
    mut component: File,
    compiled_dir: &Path,
    named: &Path,
) -> Result<(std::path::PathBuf, bool), Error> {
    // Read from its start whatever its offset: a descriptor handed over shares its offset
    // with the sender's, and the compile step below reads it to the end.
    let length = component
        .metadata()
        .map_err(Error::io("read", named))?
        .len();
    let mut wasm = vec![0; usize::try_from(length).unwrap_or(usize::MAX)];
    component
        .read_exact_at(&mut wasm, 0)
        .map_err(Error::io("read", named))?;
    let compiled = compiled::path(engine, compiled_dir, &wasm);
    drop(wasm);
    if compiled.exists() {
        return Ok((compiled, false));
    }
    let _lock = compiled::lock(&compiled)?;
    if compiled.exists() {
        return Ok((compiled, false));
    }
    component.rewind().map_err(Error::io("read", named))?;
    compile_in_child(component, &compiled)?;
    Ok((compiled, true))
}

/// Runs the compile step with the component as its stdin.
fn compile_in_child(component: File, compiled: &Path) -> Result<(), Error> {
    let program = std::env::current_exe().map_err(Error::io("find", "/proc/self/exe"))?;
    let output = Command::new(&program)
        .arg(COMPILE_ARG)
        .arg(compiled)
        .stdin(Stdio::from(component))
        .output()
        .map_err(Error::io("run", &program))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Wasm(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// The compile step: the component on stdin, confined to the compiled-code directory.
pub fn compile_step(compiled: &Path) -> Result<(), Error> {
    let dir = compiled.parent().unwrap_or(Path::new("."));
    sandbox::confine_for_compiling(dir)?;
    let mut wasm = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wasm)
        .map_err(Error::io("read", "the component on stdin"))?;
    compiled::compile(&compiled::engine()?, &wasm, compiled)
}
