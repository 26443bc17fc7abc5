//! One tool call into a component: WASI 0.2 with nothing but a scratch directory, stderr kept
//! for crash reports, no sockets; the skill world's HTTP import answered through agentd; memory
//! counted as it grows; the deadline enforced by wasmtime's epochs.

use crate::channel::Channel;
use carapace_skills::sandbox_protocol::{self, Call, HttpRequest, Outcome, Stop};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "../skills/wit", world: "skill" });

use carapace::skill::http;

/// Where the skill sees its scratch directory.
pub const SCRATCH_IN_GUEST: &str = "/scratch";
/// How much of the skill's stderr a crash report carries.
const STDERR_KEPT: usize = 16 << 10;
/// Tables (function references) a component may grow to; Python's needs a few thousand.
const TABLE_ELEMENTS_MAX: usize = 1 << 20;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryBudget,
    channel: Channel,
    hosts: Vec<String>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl http::Host for State {
    fn fetch(&mut self, request: http::Request) -> Result<http::Response, String> {
        sandbox_protocol::url_allowed(&request.url, &self.hosts)?;
        let answer = self
            .channel
            .fetch(HttpRequest {
                method: request.method,
                url: request.url,
                headers: request.headers,
                body: request.body,
            })
            .map_err(|err| err.to_string())?;
        answer.map(|response| http::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// All linear memories together, counted as they are created and grown.
struct MemoryBudget {
    limit: usize,
    used: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used + desired.saturating_sub(current);
        if after > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.limit);
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }
}

/// Runs `call` in `component` and says how it ended. The channel is handed back for the last
/// message.
pub fn call(
    engine: &Engine,
    component: &Component,
    call: &Call,
    channel: Channel,
) -> (Outcome, Channel) {
    let stderr = MemoryOutputPipe::new(STDERR_KEPT);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if let Err(err) = wasi.preopened_dir(&call.scratch, SCRATCH_IN_GUEST, FsPerms::ReadWrite) {
        let detail = format!(
            "its scratch directory {} cannot be opened: {err:#}",
            call.scratch.display()
        );
        return (Outcome::Stopped(Stop::Unusable { detail }), channel);
    }
    let mut store = Store::new(
        engine,
        State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryBudget {
                limit: usize::try_from(call.limits.memory_bytes).unwrap_or(usize::MAX),
                used: 0,
                exceeded: false,
            },
            channel,
            hosts: call.hosts.clone(),
        },
    );
    store.limiter(|state| &mut state.memory);
    // The deadline: one epoch tick, given when the time is up; wasm code checks for it at
    // every loop head and function entry.
    store.set_epoch_deadline(1);
    let ticker = engine.clone();
    let deadline = Duration::from_millis(call.limits.deadline_ms);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        ticker.increment_epoch();
    });

    let result = instantiate_and_call(&mut store, engine, component, call);
    let outcome = match result {
        Ok(Ok(answer)) => Outcome::Answer(answer),
        Ok(Err(message)) => Outcome::ToolError(message),
        Err(err) if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
            Outcome::Stopped(Stop::Deadline {
                ms: call.limits.deadline_ms,
            })
        }
        Err(_) if store.data().memory.exceeded => Outcome::Stopped(Stop::MemoryLimit {
            bytes: call.limits.memory_bytes,
        }),
        Err(Failure::Unusable(detail)) => Outcome::Stopped(Stop::Unusable { detail }),
        Err(Failure::Trapped(err)) => {
            let written = String::from_utf8_lossy(&stderr.contents())
                .trim()
                .to_string();
            let mut detail = format!("{err:#}");
            if !written.is_empty() {
                detail.push_str("; it wrote: ");
                detail.push_str(&written);
            }
            Outcome::Stopped(Stop::Crashed { detail })
        }
    };
    (outcome, store.into_data().channel)
}

enum Failure {
    /// The component does not fit the skill world.
    Unusable(String),
    /// The skill's code trapped.
    Trapped(wasmtime::Error),
}

impl Failure {
    fn downcast_ref<E: std::error::Error + Send + Sync + 'static>(&self) -> Option<&E> {
        match self {
            Failure::Trapped(err) => err.downcast_ref(),
            Failure::Unusable(_) => None,
        }
    }
}

fn instantiate_and_call(
    store: &mut Store<State>,
    engine: &Engine,
    component: &Component,
    call: &Call,
) -> Result<Result<String, String>, Failure> {
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .and_then(|()| Skill::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state))
        .map_err(|err| Failure::Unusable(format!("{err:#}")))?;
    let pre = linker.instantiate_pre(component).map_err(|err| {
        Failure::Unusable(format!(
            "it needs more than the skill world gives (WASI 0.2 and carapace:skill/http): {err:#}"
        ))
    })?;
    let pre = SkillPre::new(pre).map_err(|err| {
        Failure::Unusable(format!(
            "it does not export carapace:skill/tool@0.1.0: {err:#}"
        ))
    })?;
    // Instantiating runs the component's start code (Python's module imports): the deadline
    // and memory limit already apply.
    let skill = pre.instantiate(&mut *store).map_err(Failure::Trapped)?;
    skill
        .carapace_skill_tool()
        .call_call(&mut *store, &call.tool, &call.arguments)
        .map_err(Failure::Trapped)
}
