//! The markdown table `make bench` prints: one row per figure, Carapace and the baseline side
//! by side, and their ratio (Carapace / baseline: below 1 means Carapace is smaller or faster).

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Mib,
    Seconds,
}

pub struct Row {
    pub label: String,
    pub unit: Unit,
    /// None when that side was not measured (CARAPACE_BENCH_ONLY).
    pub carapace: Option<f64>,
    pub baseline: Option<f64>,
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| | Carapace | Debian + systemd | Carapace / Debian |\n|---|---:|---:|---:|\n",
    );
    for row in rows {
        let ratio = match (row.carapace, row.baseline) {
            (Some(c), Some(b)) if b > 0.0 => format!("{:.2}", c / b),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ratio} |\n",
            row.label,
            value(row.carapace, row.unit),
            value(row.baseline, row.unit)
        ));
    }
    out
}

fn value(v: Option<f64>, unit: Unit) -> String {
    let Some(v) = v else { return "–".into() };
    match unit {
        Unit::Mib if v < 10.0 => format!("{v:.2} MiB"),
        Unit::Mib => format!("{v:.1} MiB"),
        Unit::Seconds => format!("{v:.2} s"),
    }
}

pub const CHECKS: &[(&str, fn())] = &[
    ("rows show both values and their ratio", || {
        let rows = [Row {
            label: "boot".into(),
            unit: Unit::Seconds,
            carapace: Some(5.0),
            baseline: Some(20.0),
        }];
        assert!(
            render(&rows).contains("| boot | 5.00 s | 20.00 s | 0.25 |"),
            "{}",
            render(&rows)
        );
    }),
    ("a side not measured shows a dash and no ratio", || {
        let rows = [Row {
            label: "zst".into(),
            unit: Unit::Mib,
            carapace: None,
            baseline: Some(150.31),
        }];
        assert!(
            render(&rows).contains("| zst | – | 150.3 MiB | – |"),
            "{}",
            render(&rows)
        );
    }),
];
