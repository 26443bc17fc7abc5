//! Boot time with Secure Boot against today's boot, side by side in one run (`make bench`): the
//! default recipe built as it ships (unsigned) and built signed with fresh test keys (the same
//! recipe under another name); rounds alternate the unsigned image on OVMF's plain firmware and
//! the signed one under OVMF's Secure Boot firmware with the keys enrolled, each a fresh disk.
//! Reported: medians of QEMU start → ready line (firmware, systemd-boot's verification, kernel,
//! init) and of kernel start → ready (`boot_ms`), and their ratios. A third arm gives the signed
//! image a TPM (swtpm), so its /data is LUKS2 with a TPM-sealed key: its first boot formats it,
//! and the boot after (every day's boot) unseals the key and opens it; each arm's second boot
//! on the same disk is measured too.
//!
//! Then /data's throughput through dm-crypt against plain ext4: a small signed recipe whose
//! test service writes 64 MiB to /data (fsynced) and reads it back uncached, booted under
//! Secure Boot with and without a TPM. Under TCG the guest's AES-NI is emulated, so that ratio
//! overstates the cost on hardware; `cryptsetup benchmark` on this host's CPU says what the
//! cipher itself does.
//!
//! Without `--bench` (as `cargo test` runs benches) it checks its own arithmetic only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use carapace_image::build::{BuildOptions, build, build_with};
use carapace_image::qemu::{Vm, VmConfig, create_overlay, detect_accel};
use carapace_image::secure_boot::{ENROLLED_VARS, generate};

const RECIPE: &str = "recipes/x86-64-qemu.toml";
const SIGNED_NAME: &str = "x86-64-qemu-secure-boot-bench";
const ROUNDS: usize = 3;
const READY: &str = "carapace: ready slot=a";
const TIMEOUT: Duration = Duration::from_secs(600);
const DATA_ROUNDS: usize = 3;
const DATARATE_NAME: &str = "x86-64-datarate-bench";
/// The Secure Boot test's small recipe, under another name and with the test service that
/// measures /data.
fn datarate_recipe() -> String {
    let small = include_str!("../recipes/x86-64-secure-boot-test.toml").replacen(
        "name = \"x86-64-secure-boot-test\"",
        &format!("name = \"{DATARATE_NAME}\""),
        1,
    );
    format!(
        "{small}
[[binary]]
package = \"carapace-tests\"
bin = \"carapace-testsvc\"

[[service]]
name = \"datarate\"
exec = [\"/usr/bin/carapace-testsvc\", \"datarate\"]
uid = 1001
gid = 1001
memory_max = 134217728
pids_max = 8
state_dir = true
"
    )
}

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        println!("check median ... ok (the benchmark itself runs with `make bench`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_owned();
    let recipe = workspace.join(RECIPE);
    let (loaded, _) = carapace_image::recipe::Recipe::load(&recipe).map_err(|e| e.to_string())?;
    let board = carapace_image::board::find(&loaded.board).map_err(|e| e.to_string())?;

    eprintln!("bench: building {RECIPE} as it ships");
    let plain = build(&recipe, &workspace).map_err(|e| format!("build {RECIPE}: {e}"))?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let keys = work.path().join("keys");
    generate(&keys, "Carapace bench").map_err(|e| e.to_string())?;
    let signed_recipe = signed_variant(&workspace, &recipe, work.path())?;
    eprintln!("bench: building it signed for Secure Boot ({SIGNED_NAME})");
    let options = BuildOptions {
        secure_boot_keys: Some(keys.clone()),
        ..BuildOptions::default()
    };
    let signed = build_with(&signed_recipe, &workspace, options)
        .map_err(|e| format!("build the signed image: {e}"))?;
    let vars = signed.image.with_file_name(ENROLLED_VARS);

    let accel = detect_accel(&board.qemu);
    let arms = [
        ("unsigned, plain firmware", &plain.image, None, false),
        ("signed, Secure Boot", &signed.image, Some(&vars), false),
        (
            "signed, Secure Boot, TPM (encrypted /data)",
            &signed.image,
            Some(&vars),
            true,
        ),
    ];
    let mut samples: Vec<Samples> = arms.iter().map(|_| Samples::default()).collect();
    for round in 1..=ROUNDS {
        for ((name, image, enrolled, tpm), samples) in arms.iter().zip(samples.iter_mut()) {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let config = machine(board, image, *enrolled, *tpm, dir.path())?;
            let (qemu_s, kernel_s) = boot_once(&config)?;
            let (_, later_s) = boot_once(&config)?;
            eprintln!(
                "bench: round {round}/{ROUNDS} {name}: ready {qemu_s:.2} s after QEMU start, \
                 {kernel_s:.2} s after kernel start; next boot {later_s:.2} s ({accel:?})"
            );
            samples.qemu.push(qemu_s);
            samples.kernel.push(kernel_s);
            samples.later.push(later_s);
        }
    }
    let rows: Vec<[f64; 3]> = samples
        .iter_mut()
        .map(|s| {
            [
                median(&mut s.qemu),
                median(&mut s.kernel),
                median(&mut s.later),
            ]
        })
        .collect();
    println!(
        "Secure Boot and encrypted /data against today's boot (x86-64 in QEMU, {accel:?}, medians of {ROUNDS}):"
    );
    println!(
        "| | today (unsigned, plain OVMF) | Secure Boot (signed UKI, enrolled keys) | ratio | \
         Secure Boot + TPM-sealed LUKS2 /data | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for (what, at) in [
        ("first boot: QEMU start → ready", 0),
        ("first boot: kernel start → ready", 1),
        ("next boot: kernel start → ready", 2),
    ] {
        let (t, s, e) = (rows[0][at], rows[1][at], rows[2][at]);
        println!(
            "| {what} | {t:.2} s | {s:.2} s | {:.2}x | {e:.2} s | {:.2}x |",
            s / t,
            e / t
        );
    }
    data_throughput(&workspace, board, &keys, work.path())
}

/// /data's throughput on plain ext4 and through dm-crypt, both under Secure Boot.
fn data_throughput(
    workspace: &Path,
    board: &'static carapace_image::board::Board,
    keys: &Path,
    work: &Path,
) -> Result<()> {
    let recipe = variant(workspace, DATARATE_NAME, &datarate_recipe(), work)?;
    eprintln!("bench: building {DATARATE_NAME} signed");
    let options = BuildOptions {
        secure_boot_keys: Some(keys.to_owned()),
        ..BuildOptions::default()
    };
    let built = build_with(&recipe, workspace, options)
        .map_err(|e| format!("build {DATARATE_NAME}: {e}"))?;
    let vars = built.image.with_file_name(ENROLLED_VARS);
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 1..=DATA_ROUNDS {
        for (tpm, rate) in [false, true].into_iter().zip(rates.iter_mut()) {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let config = machine(board, &built.image, Some(&vars), tpm, dir.path())?;
            let mut vm = Vm::start(&config).map_err(|e| e.to_string())?;
            let (_, line) = vm
                .wait_for_containing("datarate write_mib_s=", 0, TIMEOUT)
                .map_err(|e| format!("{e}\n{}", vm.console().join("\n")))?;
            vm.kill();
            let value = |key: &str| -> Result<f64> {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.parse().ok())
                    .ok_or_else(|| format!("no {key} in {line:?}"))
            };
            let (write, read) = (value("write_mib_s=")?, value("read_mib_s=")?);
            eprintln!(
                "bench: data round {round}/{DATA_ROUNDS} {}: write {write:.1} MiB/s, read {read:.1} MiB/s",
                if tpm { "dm-crypt" } else { "plain ext4" }
            );
            rate[0].push(write);
            rate[1].push(read);
        }
    }
    println!("/data throughput, 64 MiB fsynced / read uncached (QEMU, medians of {DATA_ROUNDS}):");
    println!("| | plain ext4 | ext4 on dm-crypt (aes-xts-plain64) | ratio |");
    println!("|---|---|---|---|");
    for (what, at) in [("write", 0), ("read", 1)] {
        let plain = median(&mut rates[0][at]);
        let crypt = median(&mut rates[1][at]);
        println!(
            "| {what} | {plain:.1} MiB/s | {crypt:.1} MiB/s | {:.2}x |",
            crypt / plain
        );
    }
    // The cipher on this host's CPU, through the kernel's crypto API (no device-mapper needed).
    let out = std::process::Command::new("cryptsetup")
        .args([
            "benchmark",
            "--cipher",
            "aes-xts-plain64",
            "--key-size",
            "512",
        ])
        .output()
        .map_err(|e| format!("cryptsetup benchmark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let says = String::from_utf8_lossy(&out.stderr);
    match text.lines().find(|l| l.trim_start().starts_with("aes-xts")) {
        Some(line) => println!(
            "This host's CPU, `cryptsetup benchmark` (encrypt, decrypt): {}",
            line.trim()
        ),
        None => println!(
            "`cryptsetup benchmark` did not run on this host: {}",
            says.lines().next().unwrap_or("no output")
        ),
    }
    Ok(())
}

/// A fresh machine for `image` with a 4 GiB overlay in `dir`, under Secure Boot with `vars`,
/// with a TPM whose state is in `dir` if asked.
fn machine(
    board: &'static carapace_image::board::Board,
    image: &Path,
    vars: Option<&PathBuf>,
    tpm: bool,
    dir: &Path,
) -> Result<VmConfig> {
    let disk = dir.join("disk.qcow2");
    create_overlay(image, &disk, 4).map_err(|e| e.to_string())?;
    let mut config = VmConfig::new(board, disk, dir);
    config.accel = detect_accel(&board.qemu);
    if let Some(vars) = vars {
        config.secure_boot(vars).map_err(|e| e.to_string())?;
    }
    if tpm {
        config.tpm(&dir.join("tpm"));
    }
    Ok(config)
}

#[derive(Default)]
struct Samples {
    qemu: Vec<f64>,
    kernel: Vec<f64>,
    /// The boot after the first, on the same disk.
    later: Vec<f64>,
}

/// The default recipe under SIGNED_NAME, in `dir` with its lock and files, so its build has an
/// out folder of its own.
fn signed_variant(workspace: &Path, recipe: &Path, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(recipe).map_err(|e| e.to_string())?;
    let renamed = text.replacen(
        "name = \"x86-64-qemu\"",
        &format!("name = \"{SIGNED_NAME}\""),
        1,
    );
    if renamed == text {
        return Err("the default recipe's name line moved".into());
    }
    variant(workspace, SIGNED_NAME, &renamed, dir)
}

/// Recipe `text` as `name` in `dir`, with the default recipe's lock and files beside it.
fn variant(workspace: &Path, name: &str, text: &str, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let recipes = workspace.join("recipes");
    std::fs::copy(
        recipes.join("x86-64-qemu.lock"),
        dir.join(format!("{name}.lock")),
    )
    .map_err(|e| e.to_string())?;
    let files = dir.join("files");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(recipes.join("files")).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), files.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

/// (QEMU start → ready, kernel start → ready) in seconds; the machine is killed after.
fn boot_once(config: &VmConfig) -> Result<(f64, f64)> {
    let mut vm = Vm::start(config).map_err(|e| e.to_string())?;
    let (_, line) = vm
        .wait_for(READY, 0, TIMEOUT)
        .map_err(|e| format!("{e}\n{}", vm.console().join("\n")))?;
    let qemu_s = vm.started.elapsed().as_secs_f64();
    let boot_ms: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("boot_ms="))
        .and_then(|ms| ms.parse().ok())
        .ok_or_else(|| format!("no boot_ms in {line:?}"))?;
    vm.kill();
    Ok((qemu_s, boot_ms / 1000.0))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
