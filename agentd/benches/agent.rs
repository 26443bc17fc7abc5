//! `make bench`: agentd against ZeroClaw 0.8.7, side by side, each the real binary against
//! the same in-process fakes of Telegram and an OpenAI-compatible LLM on loopback (a fresh
//! pair for every run), one agent after the other:
//! 1. ready: CPU time (user+sys, /proc/<pid>/stat) and wall time from spawn to the first
//!    getUpdates at the fake, on a first start (empty state) and on a restart of the same
//!    state; medians of several;
//! 2. idle RSS and PSS (/proc/<pid>/smaps_rollup) a minute after the owner's first contact
//!    (agentd: pairing);
//! 3. message → LLM: from the getUpdates answer that carried a message to the head of the
//!    next LLM request, p50 and p99 over 1,000 messages sent one at a time (each answered
//!    before the next), and message → reply (to the sendMessage at the fake);
//! 4. bytes to the LLM per turn (request bodies, median; with the requests per turn);
//! 5. RSS and PSS after those turns.
//!
//! The fake LLM answers "ok: " and the last 100 characters of the last message (fakes.rs says
//! why). The table prints agentd / ZeroClaw ratios and, for the figures the issue sets goals
//! for, whether agentd meets them. Every sample, and what each agent sent the LLM in its last
//! turn, goes to out/bench/agent.json.
//!
//! ZeroClaw is installed on the first run into the bench cache ($CARAPACE_CACHE/bench/zeroclaw,
//! else ~/.cache/carapace/bench/zeroclaw) with `cargo +nightly install zeroclaw --version
//! 0.8.7 --locked`: it needs the nightly toolchain (Rust 1.96) and network to crates.io then,
//! and compiles for a long time. The bench fails, saying what to do, when it cannot.
//!
//! Environment:
//! - `CARAPACE_BENCH_ONLY=agentd|zeroclaw` measures one side (the other shows dashes);
//! - `CARAPACE_BENCH_STARTS` starts per agent (default 5), each a first start and a restart;
//! - `CARAPACE_BENCH_IDLE_SECONDS` (default 60);
//! - `CARAPACE_BENCH_TURNS` (default 1000) and `CARAPACE_BENCH_TURN_SECONDS` (default 900),
//!   the time after which an agent's turns stop even if fewer were done (the table says how
//!   many were);
//! - `CARAPACE_BENCH_ECHO=1` echoes the agents' output to stderr.
//!
//! This target has no libtest harness: `cargo bench` passes `--bench` and gets the benchmark;
//! `cargo test -p carapace-agentd --benches` runs it without and gets the self-checks.

#[path = "agent/agentd.rs"]
mod agentd;
#[path = "agent/agents.rs"]
mod agents;
#[path = "agent/error.rs"]
mod error;
#[path = "agent/fakes.rs"]
mod fakes;
#[path = "agent/measure.rs"]
mod measure;
#[path = "agent/process.rs"]
mod process;
#[path = "agent/procfs.rs"]
mod procfs;
#[path = "agent/report.rs"]
mod report;
#[path = "agent/stats.rs"]
mod stats;
#[path = "agent/table.rs"]
mod table;
#[path = "agent/zeroclaw.rs"]
mod zeroclaw;

use std::process::ExitCode;
use std::time::Duration;

use agents::Agent;
use error::{Result, fail};
use measure::Plan;
use report::Figures;

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        return self_checks();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn self_checks() -> ExitCode {
    let checks = [stats::CHECKS, procfs::CHECKS, table::CHECKS].concat();
    for (name, check) in &checks {
        check();
        println!("check {name} ... ok");
    }
    println!(
        "{} checks passed (the benchmark itself runs with `make bench`)",
        checks.len()
    );
    ExitCode::SUCCESS
}

fn run() -> Result<()> {
    let plan = plan()?;
    let only = std::env::var("CARAPACE_BENCH_ONLY").unwrap_or_default();
    let (with_agentd, with_zeroclaw) = match only.as_str() {
        "" => (true, true),
        "agentd" => (true, false),
        "zeroclaw" => (false, true),
        other => {
            return Err(fail(format!(
                "CARAPACE_BENCH_ONLY={other}: say agentd or zeroclaw, or leave it unset"
            )));
        }
    };
    // ZeroClaw first: when it cannot be installed, say so before minutes of agentd runs.
    let zeroclaw = with_zeroclaw
        .then(zeroclaw::ZeroClaw::install)
        .transpose()?;
    let agentd = with_agentd
        .then(|| measure_agent(&agentd::Agentd::new(), &plan))
        .transpose()?;
    let zeroclaw = zeroclaw
        .map(|zeroclaw| measure_agent(&zeroclaw, &plan))
        .transpose()?;
    report::write_json(agentd.as_ref(), zeroclaw.as_ref())?;
    let table = report::table(agentd.as_ref(), zeroclaw.as_ref(), plan.idle.as_secs());
    println!("{table}");
    Ok(())
}

fn measure_agent(agent: &dyn Agent, plan: &Plan) -> Result<Figures> {
    eprintln!("bench: {}", agent.name());
    let binary_bytes = std::fs::metadata(agent.binary())
        .map(|m| m.len())
        .unwrap_or(0);
    let starts = measure::starts(agent, plan)?;
    let session = measure::session(agent, plan)?;
    Ok(Figures {
        binary_bytes,
        starts,
        session,
    })
}

fn plan() -> Result<Plan> {
    Ok(Plan {
        starts: number("CARAPACE_BENCH_STARTS", 5)?.max(1),
        idle: Duration::from_secs(number("CARAPACE_BENCH_IDLE_SECONDS", 60)? as u64),
        turns: number("CARAPACE_BENCH_TURNS", 1000)?.max(1),
        turn_time: Duration::from_secs(number("CARAPACE_BENCH_TURN_SECONDS", 900)? as u64),
    })
}

fn number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map_err(|_| fail(format!("{name}={text}: not a number"))),
        Err(_) => Ok(default),
    }
}
