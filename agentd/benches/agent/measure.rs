//! The measurements, the same for both agents, each run with a fresh pair of fakes:
//! - starts: spawn → first getUpdates at the fake, CPU (user+sys) and wall time, on a first
//!   start (empty state) and on a restart of the same state (the everyday boot);
//! - a session: idle memory a while after the owner's first contact, then turns, one message
//!   at a time, each timed from the getUpdates answer that delivered it to the first LLM
//!   request after it, then the memory after the turns.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::agents::{Agent, WAIT};
use crate::error::{Context, Result, fail};
use crate::fakes::Fakes;
use crate::process::Process;
use crate::procfs::Memory;

/// How a run is sized (from the environment, see the bench's comment).
pub struct Plan {
    pub starts: usize,
    pub idle: Duration,
    pub turns: usize,
    /// The turns stop after this much time even if fewer were done.
    pub turn_time: Duration,
}

/// One start, spawn → first getUpdates.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    pub cpu_ms: f64,
    pub wall_ms: f64,
}

#[derive(Default)]
pub struct Starts {
    pub first: Vec<Start>,
    pub restart: Vec<Start>,
}

/// One message and its answer.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    /// From the getUpdates answer that carried the message to the first LLM request after it.
    pub to_llm_ms: f64,
    /// From the same getUpdates answer to the reply's sendMessage at the fake.
    pub reply_ms: f64,
    /// Request body bytes to the LLM during the turn.
    pub bytes: usize,
    /// The largest request body of the turn.
    pub largest_bytes: usize,
    pub requests: usize,
}

pub struct Session {
    pub idle: Memory,
    pub turns: Vec<Turn>,
    /// Whether the time limit stopped the turns before the planned count.
    pub cut_short: bool,
    pub after_turns: Memory,
    /// What the last turn sent to the LLM: each request's path and body.
    pub last_turn: Requests,
}

/// Requests to the LLM: path and body.
pub type Requests = Vec<(String, serde_json::Value)>;

/// `plan.starts` times: a first start in an empty directory, the owner's first contact, a
/// stop, and a restart of the same state with fresh fakes on the same ports.
pub fn starts(agent: &dyn Agent, plan: &Plan) -> Result<Starts> {
    let mut starts = Starts::default();
    for round in 1..=plan.starts {
        let dir = tempfile::tempdir().context(|| "a temporary directory".into())?;
        let fakes = Fakes::start()?;
        let (first, process) = start(agent, &fakes, dir.path())?;
        agent.introduce(&fakes)?;
        process.stop();
        let (telegram, llm) = (fakes.telegram_address(), fakes.llm_address());
        drop(fakes);
        let fakes = Fakes::start_on(telegram, llm)?;
        let (restart, process) = start(agent, &fakes, dir.path())?;
        process.stop();
        eprintln!(
            "bench: {} start {round}: first {:.0} ms CPU, {:.0} ms; restart {:.0} ms CPU, {:.0} ms",
            agent.name(),
            first.cpu_ms,
            first.wall_ms,
            restart.cpu_ms,
            restart.wall_ms
        );
        starts.first.push(first);
        starts.restart.push(restart);
    }
    Ok(starts)
}

/// Starts the agent and waits for its first long poll.
fn start(agent: &dyn Agent, fakes: &Fakes, dir: &Path) -> Result<(Start, Process)> {
    let command = agent.command(fakes, dir)?;
    let mut process = Process::spawn(agent.name(), command)?;
    let polled = fakes.wait_first_poll(&mut process, WAIT).map_err(|e| {
        fail(format!(
            "{} did not start: {e}\n({})",
            agent.name(),
            agent.help()
        ))
    })?;
    let cpu_ms = process.cpu_ms()?;
    let wall_ms = ms(polled.saturating_duration_since(process.spawned));
    Ok((Start { cpu_ms, wall_ms }, process))
}

/// One long run: start, the owner's first contact, `plan.idle` of nothing, then the turns.
pub fn session(agent: &dyn Agent, plan: &Plan) -> Result<Session> {
    let dir = tempfile::tempdir().context(|| "a temporary directory".into())?;
    let fakes = Fakes::start()?;
    let (_, mut process) = start(agent, &fakes, dir.path())?;
    agent.introduce(&fakes)?;
    eprintln!("bench: {} idle for {} s", agent.name(), plan.idle.as_secs());
    std::thread::sleep(plan.idle);
    alive(&mut process)?;
    let idle = process.memory()?;
    let (turns, cut_short, last_turn) = turns(agent, &fakes, &mut process, plan)?;
    let after_turns = process.memory()?;
    process.stop();
    Ok(Session {
        idle,
        turns,
        cut_short,
        after_turns,
        last_turn,
    })
}

fn turns(
    agent: &dyn Agent,
    fakes: &Fakes,
    process: &mut Process,
    plan: &Plan,
) -> Result<(Vec<Turn>, bool, Requests)> {
    let began = Instant::now();
    let mut turns = Vec::with_capacity(plan.turns);
    let mut sent = fakes.telegram.sent().len();
    let mut requests = fakes.llm.requests().len();
    let mut last_turn = Vec::new();
    for n in 1..=plan.turns {
        if began.elapsed() > plan.turn_time {
            eprintln!(
                "bench: {} did {} turns in {} s, the limit; stopping there",
                agent.name(),
                turns.len(),
                plan.turn_time.as_secs()
            );
            return Ok((turns, true, last_turn));
        }
        let marker = format!("note {n:04}");
        let update = fakes.say(&format!(
            "{marker}: what is on my list for today, and when is the dentist?"
        ));
        let (next, replied) = fakes
            .wait_reply(sent, &marker, WAIT)
            .map_err(|e| alive(process).err().unwrap_or(e))?;
        sent = next;
        let delivered = fakes.telegram.delivered_at(update).ok_or_else(|| {
            fail(format!(
                "the fake Telegram did not record delivering update {update}"
            ))
        })?;
        let new = fakes.llm.requests_from(requests);
        requests += new.len();
        let first = new.iter().find(|r| r.arrived >= delivered).ok_or_else(|| {
            fail(format!(
                "{} answered {marker:?} without asking the LLM",
                agent.name()
            ))
        })?;
        turns.push(Turn {
            to_llm_ms: ms(first.arrived - delivered),
            reply_ms: ms(replied.saturating_duration_since(delivered)),
            bytes: new.iter().map(|r| r.body_len).sum(),
            largest_bytes: new.iter().map(|r| r.body_len).max().unwrap_or(0),
            requests: new.len(),
        });
        last_turn = new.into_iter().map(|r| (r.path, r.body)).collect();
        if n % 100 == 0 {
            eprintln!(
                "bench: {} {n} turns in {:.0} s",
                agent.name(),
                began.elapsed().as_secs_f64()
            );
        }
    }
    Ok((turns, false, last_turn))
}

fn alive(process: &mut Process) -> Result<()> {
    match process.exited() {
        Some(why) => Err(fail(format!("{why}; {}", process.tail()))),
        None => Ok(()),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
