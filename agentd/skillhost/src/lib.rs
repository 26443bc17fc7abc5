//! carapace-skillhost: one process per tool call into a skill's WebAssembly component. agentd
//! starts it and sends the call on stdin (carapace_skills::sandbox_protocol); the host compiles
//! the component once (a child process, `compile`, keeps the machine code), confines itself
//! (Landlock, seccomp, rlimits: [`sandbox`]), runs the call in wasmtime with the call's memory
//! limit and deadline ([`run`]), relays the skill's HTTP requests to agentd, and reports how it
//! ended.

mod channel;
pub mod compiled;
mod error;
pub mod run;
pub mod sandbox;
mod syscalls;

pub use channel::Channel;
pub use error::Error;

use carapace_skills::sandbox_protocol::{Call, FromHost, Outcome, Stop, ToHost};
use std::path::Path;
use std::process::Command;

/// The compile step's argument (then the component and the compiled file's path).
pub const COMPILE_ARG: &str = "compile";

/// Answers one call from `channel`. Errors are ones agentd cannot be told about (the channel
/// itself failed); everything else ends as a Finished message.
pub fn serve_one(mut channel: Channel) -> Result<(), Error> {
    let call = match channel.receive()? {
        ToHost::Call(call) => call,
        ToHost::Fetched(_) => return Err(Error::Request("an HTTP answer before any call".into())),
    };
    let (outcome, mut channel) = match prepare(&call) {
        Ok((engine, component, compiled)) => {
            channel.send(&FromHost::Running { compiled })?;
            run::call(&engine, &component, &call, channel)
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
fn prepare(call: &Call) -> Result<(wasmtime::Engine, wasmtime::component::Component, bool), Error> {
    let engine = compiled::engine()?;
    let wasm = std::fs::read(&call.component).map_err(Error::io("read", &call.component))?;
    let compiled = compiled::path(&engine, &call.compiled_dir, &wasm);
    drop(wasm);
    let compile = !compiled.exists();
    if compile {
        compile_in_child(&call.component, &compiled)?;
    }
    let compiled_file = std::fs::File::open(&compiled).map_err(Error::io("open", &compiled))?;
    sandbox::confine_for_running(call)?;
    let component = compiled::load(&engine, compiled_file, &compiled)?;
    Ok((engine, component, compile))
}

fn compile_in_child(component: &Path, compiled: &Path) -> Result<(), Error> {
    let program = std::env::current_exe().map_err(Error::io("find", "/proc/self/exe"))?;
    let output = Command::new(&program)
        .arg(COMPILE_ARG)
        .arg(component)
        .arg(compiled)
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

/// The compile step: confined to the component and the compiled-code directory.
pub fn compile_step(component: &Path, compiled: &Path) -> Result<(), Error> {
    let dir = compiled.parent().unwrap_or(Path::new("."));
    sandbox::confine_for_compiling(component, dir)?;
    compiled::compile(&compiled::engine()?, component, compiled)
}
