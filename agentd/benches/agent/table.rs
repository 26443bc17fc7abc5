//! The markdown table the bench prints: one row per figure, agentd and ZeroClaw side by side,
//! their ratio (agentd / ZeroClaw: below 1 means agentd is smaller or faster), and for the
//! figures the issue sets a goal for, whether agentd meets it.

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Ms,
    Mib,
    Kib,
    Count,
}

/// A goal for agentd's figure: at most `limit` (below it when `strict`).
#[derive(Debug, Clone, Copy)]
pub struct Goal {
    pub limit: f64,
    pub strict: bool,
}

impl Goal {
    pub fn at_most(limit: f64) -> Goal {
        Goal {
            limit,
            strict: false,
        }
    }

    pub fn below(limit: f64) -> Goal {
        Goal {
            limit,
            strict: true,
        }
    }

    fn met(&self, value: f64) -> bool {
        if self.strict {
            value < self.limit
        } else {
            value <= self.limit
        }
    }
}

pub struct Row {
    pub label: String,
    pub unit: Unit,
    /// None when that agent was not measured (CARAPACE_BENCH_ONLY).
    pub agentd: Option<f64>,
    pub zeroclaw: Option<f64>,
    pub goal: Option<Goal>,
}

pub fn render(rows: &[Row], baseline: &str) -> String {
    let mut out = format!(
        "| | agentd | {baseline} | agentd / ZeroClaw | goal for agentd |\n|---|---:|---:|---:|---|\n"
    );
    for row in rows {
        let ratio = match (row.agentd, row.zeroclaw) {
            (Some(a), Some(z)) if z > 0.0 => format!("{:.3}", a / z),
            _ => "–".into(),
        };
        let goal = match (row.goal, row.agentd) {
            (Some(goal), Some(value)) => {
                let verdict = if goal.met(value) {
                    "goal met"
                } else {
                    "goal NOT met"
                };
                let sign = if goal.strict { "<" } else { "≤" };
                format!("{sign} {}: {verdict}", show(goal.limit, row.unit))
            }
            (Some(goal), None) => format!("≤ {}", show(goal.limit, row.unit)),
            (None, _) => String::new(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ratio} | {goal} |\n",
            row.label,
            value(row.agentd, row.unit),
            value(row.zeroclaw, row.unit),
        ));
    }
    out
}

fn value(v: Option<f64>, unit: Unit) -> String {
    v.map_or_else(|| "–".into(), |v| show(v, unit))
}

fn show(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
        Unit::Ms => format!("{v:.1} ms"),
        Unit::Mib if v < 10.0 => format!("{v:.2} MiB"),
        Unit::Mib => format!("{v:.1} MiB"),
        Unit::Kib => format!("{v:.2} KiB"),
        Unit::Count => format!("{v}"),
    }
}

pub const CHECKS: &[(&str, fn())] = &[
    ("rows show both values, their ratio and the goal", || {
        let rows = [Row {
            label: "idle RSS".into(),
            unit: Unit::Mib,
            agentd: Some(5.0),
            zeroclaw: Some(20.0),
            goal: Some(Goal::at_most(10.0)),
        }];
        let table = render(&rows, "ZeroClaw");
        assert!(
            table.contains("| idle RSS | 5.00 MiB | 20.0 MiB | 0.250 | ≤ 10.0 MiB: goal met |"),
            "{table}"
        );
    }),
    ("a strict goal at its limit is not met", || {
        let rows = [Row {
            label: "p99".into(),
            unit: Unit::Ms,
            agentd: Some(20.0),
            zeroclaw: None,
            goal: Some(Goal::below(20.0)),
        }];
        let table = render(&rows, "ZeroClaw");
        assert!(
            table.contains("| p99 | 20.0 ms | – | – | < 20.0 ms: goal NOT met |"),
            "{table}"
        );
    }),
];
