//! The markdown table of the update-size bench: per update, what a box downloads with
//! Carapace's chunks, and with chunks or patches (as a box plans it when the bundle carries
//! patches from the release it runs), beside what a full-image update downloads (the image
//! raw, and zstd -3), and their ratios (below 1: Carapace's download is smaller).

use carapace_image::update_size::SizeReport;

pub struct Row {
    pub update: String,
    /// `Err(why)` when this update could not be measured (no second kernel at hand).
    pub measured: Result<SizeReport, String>,
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| update | chunks a box downloads | chunks or patches | whole image, raw | \
         whole image, zstd -3 | chunks / zstd -3 | with patches / raw | with patches / zstd -3 \
         |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let line = match &row.measured {
            Ok(report) => {
                let d = &report.delta;
                let chunks = d.download_bytes + d.index_bytes;
                let patched = d.patched_bytes + d.index_bytes;
                let ratio =
                    |part: u64, whole: u64| format!("{:.3}", part as f64 / whole.max(1) as f64);
                format!(
                    "| {} | {} ({} of {} chunks) | {} ({} of the files by a patch) | {} | {} | {} | {} \
                     | {} |\n",
                    row.update,
                    mib(chunks),
                    d.download_chunks,
                    d.chunks,
                    mib(patched),
                    d.patched_files,
                    mib(d.full_bytes),
                    mib(report.full_zstd_bytes),
                    ratio(chunks, report.full_zstd_bytes),
                    ratio(patched, d.full_bytes),
                    ratio(patched, report.full_zstd_bytes),
                )
            }
            Err(why) => format!(
                "| {} | not measured: {why} | – | – | – | – | – | – |\n",
                row.update
            ),
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
                patched_bytes: (1 << 20) - 1024,
                patched_files: 1,
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
                "| agentd | 2.00 MiB (30 of 600 chunks) | 1.00 MiB (1 of the files by a patch) | \
                 40.00 MiB | 32.00 MiB | 0.062 | 0.025 | 0.031 |"
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
                table.contains(
                    "| kernel | not measured: no second kernel | – | – | – | – | – | – |"
                ),
                "{table}"
            );
        },
    ),
];
