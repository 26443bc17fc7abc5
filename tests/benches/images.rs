//! `make bench`: the Carapace default image against a minimal Debian + systemd image, side by
//! side: image size (raw apparent, raw allocated, zstd -3), boot time (QEMU start → ready and
//! kernel start → ready, first boot on a fresh disk and second boot of the same disk) and idle
//! memory (PID 1 and all processes), medians of several boots, with Carapace / Debian ratios.
//!
//! Both images boot the same way: QEMU (TCG here), OVMF, systemd-boot and the recipe's Debian
//! kernel. The baseline is described in images/baseline.rs.
//!
//! Environment:
//! - `CARAPACE_BENCH_BOOTS` boots per system (default 5); each is a first and a second boot.
//! - `CARAPACE_BENCH_ONLY=carapace|baseline` measures one side (the other shows dashes).
//! - `CARAPACE_ACCEL=kvm|tcg` as for `carapace run`.
//! - `CARAPACE_BENCH_ECHO=1` echoes the machines' consoles to stderr (to see why a boot failed).
//!
//! Needs root (debootstrap, chroot) and network to Debian's archive on the first run; the
//! Debian tree is then cached under .cache/carapace/bench/. Outputs go to out/bench/, with
//! every boot's figures in out/bench/images.json. Progress goes to stderr, the table to stdout.
//!
//! This target has no libtest harness: `cargo bench` passes `--bench` and gets the benchmark;
//! `cargo test -p carapace-tests --benches` runs it without and gets the self-checks.

#[path = "images/baseline.rs"]
mod baseline;
#[path = "images/baseline_disk.rs"]
mod baseline_disk;
#[path = "images/boot.rs"]
mod boot;
#[path = "images/busybox_initramfs.rs"]
mod busybox_initramfs;
#[path = "images/chatty.rs"]
mod chatty;
#[path = "images/debian_root.rs"]
mod debian_root;
#[path = "images/error.rs"]
mod error;
#[path = "images/size.rs"]
mod size;
#[path = "images/stats.rs"]
mod stats;
#[path = "images/table.rs"]
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use boot::{BootSample, System};
use carapace_image::board::Board;
use error::{Context, Result, fail};
use size::ImageSize;
use table::{Row, Unit};

const RECIPE: &str = "recipes/x86-64-qemu.toml";
const DEFAULT_BOOTS: usize = 5;

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
    let checks = [stats::CHECKS, boot::CHECKS, table::CHECKS].concat();
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

/// What one system measured: its image and, per round, its first and second boot.
struct Measured {
    size: ImageSize,
    first: Vec<BootSample>,
    second: Vec<BootSample>,
}

fn run() -> Result<()> {
    let workspace = workspace()?;
    let recipe = workspace.join(RECIPE);
    let board = recipe_board(&recipe)?;
    let boots = boots_per_system()?;
    let (with_carapace, with_baseline) = match std::env::var("CARAPACE_BENCH_ONLY").as_deref() {
        Ok("carapace") => (true, false),
        Ok("baseline") => (false, true),
        Ok("") | Err(_) => (true, true),
        Ok(other) => {
            return Err(fail(format!(
                "CARAPACE_BENCH_ONLY={other}: say carapace or baseline, or unset it"
            )));
        }
    };
    let out = workspace.join("out/bench");
    if with_baseline && !debian_root::running_as_root() {
        return Err(fail(
            "the baseline needs root (debootstrap, chroot): run `make bench` as root",
        ));
    }

    // Carapace first: its build fetches the pinned kernel and systemd-boot the baseline reuses.
    let mut images: Vec<(System, PathBuf, ImageSize)> = Vec::new();
    let mut warm_build_s = None;
    if with_carapace {
        eprintln!("bench: building the Carapace image ({RECIPE})");
        let built = carapace_image::build::build(&recipe, &workspace)
            .context(|| format!("build {RECIPE}"))?;
        images.push((
            System::Carapace,
            built.image.clone(),
            size::measure(&built.image, &built.image_zst)?,
        ));
        warm_build_s = Some(time_warm_builds(&recipe, &workspace)?);
    }
    let mut description = String::from("not measured");
    if with_baseline {
        let built = baseline::build(&workspace, &recipe, &out.join("baseline"))?;
        description = built.description;
        images.push((
            System::Baseline,
            built.image.clone(),
            size::measure(&built.image, &built.image_zst)?,
        ));
    }

    let accel = carapace_image::qemu::detect_accel(&board.qemu);
    let mut measured: Vec<(System, Measured)> = images
        .iter()
        .map(|(s, _, size)| {
            (
                *s,
                Measured {
                    size: *size,
                    first: vec![],
                    second: vec![],
                },
            )
        })
        .collect();
    // Rounds alternate the systems, so a burst of load on the machine hits both alike.
    for round in 1..=boots {
        for ((system, image, _), (_, m)) in images.iter().zip(measured.iter_mut()) {
            let config =
                boot::fresh_machine(board, image, &out.join("runs").join(system.name()), accel)?;
            for (nth, samples) in [("first", &mut m.first), ("second", &mut m.second)] {
                eprintln!(
                    "bench: round {round}/{boots}: {} {nth} boot ({accel:?})",
                    system.name()
                );
                let sample = boot::boot(&config, *system)?;
                eprintln!(
                    "bench:   ready {:.2} s after QEMU start, {:.2} s after kernel start; idle RSS PID 1 {} KiB, \
                     all {} KiB ({} KiB settled)",
                    sample.qemu_to_ready_s,
                    sample.kernel_to_ready_s,
                    sample.pid1_rss_kib,
                    sample.total_rss_kib,
                    sample.settled_total_rss_kib
                );
                samples.push(sample);
            }
        }
    }

    let get = |s: System| measured.iter().find(|(m, _)| *m == s).map(|(_, m)| m);
    let (c, b) = (get(System::Carapace), get(System::Baseline));
    println!(
        "{}",
        report(board, c, b, boots, accel, &description, warm_build_s)
    );
    if with_carapace {
        let chatty = chatty::measure(&workspace, board, accel, boots, &out.join("runs/chatty"))?;
        println!("{}", chatty.report(boots));
    }
    write_json(&out.join("images.json"), &measured)?;
    eprintln!(
        "bench: every boot's figures are in {}",
        out.join("images.json").display()
    );
    Ok(())
}

/// Builds of the default image once everything is downloaded and compiled: what a developer
/// waits for after a change. The median of WARM_BUILDS.
fn time_warm_builds(recipe: &Path, workspace: &Path) -> Result<f64> {
    const WARM_BUILDS: usize = 3;
    let mut seconds = Vec::new();
    for n in 1..=WARM_BUILDS {
        eprintln!("bench: warm-cache build {n}/{WARM_BUILDS}");
        let started = std::time::Instant::now();
        carapace_image::build::build(recipe, workspace).context(|| format!("build {RECIPE}"))?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    stats::median(&seconds).ok_or_else(|| fail("no warm build was timed"))
}

fn report(
    board: &Board,
    c: Option<&Measured>,
    b: Option<&Measured>,
    boots: usize,
    accel: carapace_image::qemu::Accel,
    baseline: &str,
    warm_build_s: Option<f64>,
) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let size = |m: Option<&Measured>, f: fn(&ImageSize) -> u64| m.map(|m| f(&m.size) as f64 / MIB);
    let med = |m: Option<&Measured>, second: bool, f: fn(&BootSample) -> f64| {
        m.and_then(|m| {
            stats::median(
                &(if second { &m.second } else { &m.first })
                    .iter()
                    .map(f)
                    .collect::<Vec<_>>(),
            )
        })
    };
    // Carapace-only figures (the baseline has no network service).
    let carapace_med = |f: fn(&BootSample) -> Option<f64>| {
        c.and_then(|m| stats::median(&m.second.iter().filter_map(f).collect::<Vec<_>>()))
    };
    let row = |label: &str, unit, carapace, baseline| Row {
        label: label.into(),
        unit,
        carapace,
        baseline,
    };
    let rows = [
        row(
            "image, raw (apparent size)",
            Unit::Mib,
            size(c, |s| s.apparent_bytes),
            size(b, |s| s.apparent_bytes),
        ),
        row(
            "image, raw (allocated on disk)",
            Unit::Mib,
            size(c, |s| s.allocated_bytes),
            size(b, |s| s.allocated_bytes),
        ),
        row(
            "image, zstd -3",
            Unit::Mib,
            size(c, |s| s.zstd_bytes),
            size(b, |s| s.zstd_bytes),
        ),
        row(
            "boot 1 (fresh disk): QEMU start → ready",
            Unit::Seconds,
            med(c, false, |s| s.qemu_to_ready_s),
            med(b, false, |s| s.qemu_to_ready_s),
        ),
        row(
            "boot 1 (fresh disk): kernel start → ready",
            Unit::Seconds,
            med(c, false, |s| s.kernel_to_ready_s),
            med(b, false, |s| s.kernel_to_ready_s),
        ),
        row(
            "boot 2 (steady state): QEMU start → ready",
            Unit::Seconds,
            med(c, true, |s| s.qemu_to_ready_s),
            med(b, true, |s| s.qemu_to_ready_s),
        ),
        row(
            "boot 2 (steady state): kernel start → ready",
            Unit::Seconds,
            med(c, true, |s| s.kernel_to_ready_s),
            med(b, true, |s| s.kernel_to_ready_s),
        ),
        row(
            "boot 2: QEMU start → DHCP lease (netd)",
            Unit::Seconds,
            carapace_med(|s| s.qemu_to_lease_s),
            None,
        ),
        row(
            "idle RSS (boot 2, 3 s after ready), netd (goal < 8 MiB)",
            Unit::Mib,
            carapace_med(|s| s.netd_rss_kib.map(|k| k as f64 / 1024.0)),
            None,
        ),
        row(
            "idle RSS (boot 2, 3 s after ready), PID 1",
            Unit::Mib,
            med(c, true, |s| s.pid1_rss_kib as f64 / 1024.0),
            med(b, true, |s| s.pid1_rss_kib as f64 / 1024.0),
        ),
        row(
            "idle RSS (boot 2, 3 s after ready), all processes",
            Unit::Mib,
            med(c, true, |s| s.total_rss_kib as f64 / 1024.0),
            med(b, true, |s| s.total_rss_kib as f64 / 1024.0),
        ),
        row(
            "idle RSS (boot 2, settled¹), all processes",
            Unit::Mib,
            med(c, true, |s| s.settled_total_rss_kib as f64 / 1024.0),
            med(b, true, |s| s.settled_total_rss_kib as f64 / 1024.0),
        ),
        row(
            "build from a warm cache (median of 3)",
            Unit::Seconds,
            warm_build_s,
            None,
        ),
    ];
    let settled_after = med(b, true, |s| s.settled_after_s)
        .map(|s| format!(" ({s:.0} s after ready at the median)"))
        .unwrap_or_default();
    let qemu = qemu_version(board);
    let machine_type = board.qemu.machine_type;
    let firmware = board.qemu.firmware_package;
    format!(
        "## Carapace ({RECIPE}) vs a minimal Debian + systemd image\n\n{}\n\
         - Raw apparent size is the partitions as laid out: Carapace reserves two 1 GiB root slots \
         (A/B updates) that stay holes until used; allocated counts what the file really occupies \
         (Carapace leaves empty chunks as holes, its ESP included; the baseline's ESP is written whole); zstd is what is shipped.\n\
         - Boot and memory figures are **medians of {boots} boots** per system (rounds alternate the two). \
         Each round boots a fresh qcow2 overlay on the image with fresh firmware variables (boot 1: Carapace \
         makes /data then), then boots the same overlay again (boot 2: the steady state a box lives in).\n\
         - Same path for both: {qemu}, {accel:?}, {machine_type}, 2 vCPUs, 1024 MiB, {firmware}, systemd-boot, the recipe's \
         Debian kernel. The machine is noisy (TCG on shared cores): trust ratios more than absolutes.\n\
         - Ready: Carapace's `carapace: ready` line (agentd said READY=1); Debian: multi-user.target reached \
         (a oneshot ordered after it prints the line). Kernel start → ready is CLOCK_BOOTTIME on both.\n\
         - Idle RSS is VmRSS 3 s after ready (when Carapace's PID 1 reports it). Carapace's processes \
         are PID 1, the logger and agentd; Debian's are all of them (systemd, journald, udevd, dbus, logind, gettys).\n\
         - ¹ Settled: Debian once udevd's per-event worker processes from the boot have exited\
         {settled_after}; Carapace has nothing that lingers: its 3-s figure.\n\
         - Baseline: {baseline}.\n",
        table::render(&rows)
    )
}

fn write_json(path: &Path, measured: &[(System, Measured)]) -> Result<()> {
    let samples = |v: &[BootSample]| {
        v.iter()
            .map(|s| {
                serde_json::json!({
                    "qemu_to_ready_s": s.qemu_to_ready_s,
                    "kernel_to_ready_s": s.kernel_to_ready_s,
                    "pid1_rss_kib": s.pid1_rss_kib,
                    "netd_rss_kib": s.netd_rss_kib,
                    "qemu_to_lease_s": s.qemu_to_lease_s,
                    "total_rss_kib": s.total_rss_kib,
                    "settled_total_rss_kib": s.settled_total_rss_kib,
                    "settled_after_s": s.settled_after_s,
                })
            })
            .collect::<Vec<_>>()
    };
    let mut doc = serde_json::Map::new();
    for (system, m) in measured {
        doc.insert(
            system.name().into(),
            serde_json::json!({
                "image": {
                    "apparent_bytes": m.size.apparent_bytes,
                    "allocated_bytes": m.size.allocated_bytes,
                    "zstd_bytes": m.size.zstd_bytes,
                },
                "first_boots": samples(&m.first),
                "second_boots": samples(&m.second),
            }),
        );
    }
    let text = serde_json::to_string_pretty(&doc).context(|| "format the results".into())?;
    std::fs::write(path, text).context(|| format!("write {}", path.display()))
}

fn boots_per_system() -> Result<usize> {
    match std::env::var("CARAPACE_BENCH_BOOTS") {
        Err(_) => Ok(DEFAULT_BOOTS),
        Ok(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            fail(format!(
                "CARAPACE_BENCH_BOOTS={v}: say how many boots per system, e.g. 5"
            ))
        }),
    }
}

/// The checkout this bench was compiled in (tests/ is one of its members).
fn workspace() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    dir.filter(|d| d.join(RECIPE).is_file()).ok_or_else(|| {
        fail(format!(
            "no {RECIPE} above {}: run the bench inside the Carapace checkout",
            env!("CARGO_MANIFEST_DIR")
        ))
    })
}

/// The board the recipe names: the bench boots both images as its QEMU machine.
fn recipe_board(recipe: &Path) -> Result<&'static Board> {
    let (loaded, _) = carapace_image::recipe::Recipe::load(recipe)
        .context(|| format!("read {}", recipe.display()))?;
    carapace_image::board::find(&loaded.board).context(|| "find the recipe's board".into())
}

fn qemu_version(board: &Board) -> String {
    let out = std::process::Command::new(board.qemu.system_binary)
        .arg("--version")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.replace("QEMU emulator version", "QEMU"))
        })
        .unwrap_or_else(|| "QEMU".into())
}
