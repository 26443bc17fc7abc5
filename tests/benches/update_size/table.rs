//! The markdown table of the update-size bench: per update, what a box downloads with
//! Carapace's chunks beside what a full-image update downloads (the image raw, and zstd -3),
//! and their ratios (below 1: the chunks are smaller).

use carapace_image::update_size::SizeReport;

pub struct Row {
    pub update: String,
    /// `Err(why)` when this update could not be measured (no second kernel at hand).
    pub measured: Result<SizeReport, String>,
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| update | chunks a box downloads | whole image, raw | whole image, zstd -3 | \
         chunks / raw | chunks / zstd -3 |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let line = match &row.measured {
            Ok(report) => {
                let d = &report.delta;
                let chunks = d.download_bytes + d.index_bytes;
                let ratio = |whole: u64| format!("{:.3}", chunks as f64 / whole.max(1) as f64);
                format!(
                    "| {} | {} ({} of {} chunks) | {} | {} | {} | {} |\n",
                    row.update,
                    mib(chunks),
                    d.download_chunks,
                    d.chunks,
                    mib(d.full_bytes),
                    mib(report.full_zstd_bytes),
                    ratio(d.full_bytes),
                    ratio(report.full_zstd_bytes),
                )
            }
            Err(why) => format!("| {} | not measured: {why} | – | – | – | – |\n", row.update),
        };
        out.push_str(&line);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub const CHECKS: &[(&str, fn())] = &[
    ("a measured update shows its sizes and both ratios", || {
        let report = SizeReport {
            delta: carapace_update::DeltaReport {
                full_bytes: 40 << 20,
                download_bytes: (2 << 20) - 1024,
                chunks: 600,
                download_chunks: 30,
                index_bytes: 1024,
            },
            full_zstd_bytes: 32 << 20,
        };
        let rows = [Row {
            update: "agentd".into(),
            measured: Ok(report),
        }];
        let table = render(&rows);
        assert!(
            table.contains(
                "| agentd | 2.00 MiB (30 of 600 chunks) | 40.00 MiB | 32.00 MiB | 0.050 | 0.062 |"
            ),
            "{table}"
        );
    }),
    (
        "an update not measured says why and shows no figures",
        || {
            let rows = [Row {
                update: "kernel".into(),
                measured: Err("no second kernel".into()),
            }];
            let table = render(&rows);
            assert!(
                table.contains("| kernel | not measured: no second kernel | – | – | – | – |"),
                "{table}"
            );
        },
    ),
];
