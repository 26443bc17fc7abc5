//! From the samples to the table's rows (medians, percentiles, the goals) and to
//! out/bench/agent.json (every sample).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::{Context, Result};
use crate::measure::{Session, Start, Starts};
use crate::stats::{median, percentile};
use crate::table::{Goal, Row, Unit, render};
use crate::zeroclaw;

const MIB: f64 = 1024.0;

/// What one agent measured.
pub struct Figures {
    pub binary_bytes: u64,
    pub starts: Starts,
    pub session: Session,
}

pub fn table(agentd: Option<&Figures>, zeroclaw: Option<&Figures>, idle_seconds: u64) -> String {
    let row = |label: String, unit, goal, figure: &dyn Fn(&Figures) -> Option<f64>| Row {
        label,
        unit,
        agentd: agentd.and_then(figure),
        zeroclaw: zeroclaw.and_then(figure),
        goal,
    };
    let starts = agentd.or(zeroclaw).map_or(0, |f| f.starts.first.len());
    let cpu = |starts: &[Start]| median(&starts.iter().map(|s| s.cpu_ms).collect::<Vec<_>>());
    let wall = |starts: &[Start]| median(&starts.iter().map(|s| s.wall_ms).collect::<Vec<_>>());
    let ready_goal = Some(Goal::at_most(30.0));
    let rows = [
        row(
            format!("ready, first start: CPU (median of {starts})"),
            Unit::Ms,
            ready_goal,
            &|f| cpu(&f.starts.first),
        ),
        row("ready, first start: wall".into(), Unit::Ms, None, &|f| {
            wall(&f.starts.first)
        }),
        row(
            format!("ready, restart: CPU (median of {starts})"),
            Unit::Ms,
            ready_goal,
            &|f| cpu(&f.starts.restart),
        ),
        row("ready, restart: wall".into(), Unit::Ms, None, &|f| {
            wall(&f.starts.restart)
        }),
        row(
            format!("idle RSS ({idle_seconds} s after ready; agentd: after pairing)"),
            Unit::Mib,
            Some(Goal::at_most(10.0)),
            &|f| Some(f.session.idle.rss_kib as f64 / MIB),
        ),
        row("idle PSS".into(), Unit::Mib, None, &|f| {
            Some(f.session.idle.pss_kib as f64 / MIB)
        }),
        row("message → LLM, p50".into(), Unit::Ms, None, &|f| {
            percentile(&to_llm(f), 50.0)
        }),
        row(
            "message → LLM, p99".into(),
            Unit::Ms,
            Some(Goal::below(20.0)),
            &|f| percentile(&to_llm(f), 99.0),
        ),
        row("message → reply, p50".into(), Unit::Ms, None, &|f| {
            percentile(&per_turn(f, |t| t.reply_ms), 50.0)
        }),
        row(
            "to the LLM per turn (request bodies, median)".into(),
            Unit::Kib,
            Some(Goal::below(8.0)),
            &|f| median(&per_turn(f, |t| t.bytes as f64 / 1024.0)),
        ),
        row(
            "the turn's largest request (median)".into(),
            Unit::Kib,
            None,
            &|f| median(&per_turn(f, |t| t.largest_bytes as f64 / 1024.0)),
        ),
        row(
            "LLM requests per turn (median)".into(),
            Unit::Count,
            None,
            &|f| median(&per_turn(f, |t| t.requests as f64)),
        ),
        row(
            "RSS after the turns".into(),
            Unit::Mib,
            Some(Goal::at_most(16.0)),
            &|f| Some(f.session.after_turns.rss_kib as f64 / MIB),
        ),
        row("PSS after the turns".into(), Unit::Mib, None, &|f| {
            Some(f.session.after_turns.pss_kib as f64 / MIB)
        }),
        row("turns done".into(), Unit::Count, None, &|f| {
            Some(f.session.turns.len() as f64)
        }),
        row("binary size".into(), Unit::Mib, None, &|f| {
            Some(f.binary_bytes as f64 / MIB / MIB)
        }),
    ];
    let mut out = render(&rows, &format!("ZeroClaw {}", zeroclaw::VERSION));
    for (name, figures) in [("agentd", agentd), ("ZeroClaw", zeroclaw)] {
        if let Some(f) = figures.filter(|f| f.session.cut_short) {
            out.push_str(&format!(
                "\n{name} did {} turns before the time limit (CARAPACE_BENCH_TURN_SECONDS); its turn figures are over those.\n",
                f.session.turns.len()
            ));
        }
    }
    out
}

fn to_llm(f: &Figures) -> Vec<f64> {
    per_turn(f, |t| t.to_llm_ms)
}

fn per_turn(f: &Figures, value: impl Fn(&crate::measure::Turn) -> f64) -> Vec<f64> {
    f.session.turns.iter().map(value).collect()
}

/// Every sample, for whoever wants more than the table.
pub fn write_json(agentd: Option<&Figures>, zeroclaw: Option<&Figures>) -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../out/bench");
    std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
    let all = json!({
        "agentd": agentd.map(figures_json),
        "zeroclaw": zeroclaw.map(figures_json),
        "zeroclaw_version": zeroclaw::VERSION,
    });
    let path = dir.join("agent.json");
    std::fs::write(&path, format!("{all:#}\n")).context(|| format!("write {}", path.display()))
}

fn figures_json(f: &Figures) -> Value {
    let starts = |starts: &[Start]| {
        starts
            .iter()
            .map(|s| json!({"cpu_ms": s.cpu_ms, "wall_ms": s.wall_ms}))
            .collect::<Vec<_>>()
    };
    let memory = |m: &crate::procfs::Memory| json!({"rss_kib": m.rss_kib, "pss_kib": m.pss_kib});
    json!({
        "binary_bytes": f.binary_bytes,
        "first_starts": starts(&f.starts.first),
        "restarts": starts(&f.starts.restart),
        "idle": memory(&f.session.idle),
        "after_turns": memory(&f.session.after_turns),
        "turns_cut_short": f.session.cut_short,
        "last_turn_requests": f.session.last_turn.iter().map(|(path, body)| json!({
            "path": path, "body": body
        })).collect::<Vec<_>>(),
        "turns": f.session.turns.iter().map(|t| json!({
            "to_llm_ms": t.to_llm_ms, "reply_ms": t.reply_ms, "bytes": t.bytes, "largest_bytes": t.largest_bytes,
            "requests": t.requests
        })).collect::<Vec<_>>(),
    })
}
