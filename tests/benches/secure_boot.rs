//! Boot time with Secure Boot against today's boot, side by side in one run (`make bench`): the
//! default recipe built as it ships (unsigned) and built signed with fresh test keys (the same
//! recipe under another name); rounds alternate the unsigned image on OVMF's plain firmware and
//! the signed one under OVMF's Secure Boot firmware with the keys enrolled, each a fresh disk.
//! Reported: medians of QEMU start → ready line (firmware, systemd-boot's verification, kernel,
//! init) and of kernel start → ready (`boot_ms`), and their ratios.
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
const ROUNDS: usize = 5;
const READY: &str = "carapace: ready slot=a";
const TIMEOUT: Duration = Duration::from_secs(600);

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
        secure_boot_keys: Some(keys),
        ..BuildOptions::default()
    };
    let signed = build_with(&signed_recipe, &workspace, options)
        .map_err(|e| format!("build the signed image: {e}"))?;
    let vars = signed.image.with_file_name(ENROLLED_VARS);

    let accel = detect_accel(&board.qemu);
    let mut today = Samples::default();
    let mut secure = Samples::default();
    for round in 1..=ROUNDS {
        for (name, image, enrolled, samples) in [
            ("unsigned, plain firmware", &plain.image, None, &mut today),
            (
                "signed, Secure Boot",
                &signed.image,
                Some(&vars),
                &mut secure,
            ),
        ] {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let disk = dir.path().join("disk.qcow2");
            create_overlay(image, &disk, 4).map_err(|e| e.to_string())?;
            let mut config = VmConfig::new(board, disk, dir.path());
            config.accel = accel;
            if let Some(vars) = enrolled {
                config.secure_boot(vars).map_err(|e| e.to_string())?;
            }
            let (qemu_s, kernel_s) = boot_once(&config)?;
            eprintln!(
                "bench: round {round}/{ROUNDS} {name}: ready {qemu_s:.2} s after QEMU start, \
                 {kernel_s:.2} s after kernel start ({accel:?})"
            );
            samples.qemu.push(qemu_s);
            samples.kernel.push(kernel_s);
        }
    }
    let (tq, tk) = (median(&mut today.qemu), median(&mut today.kernel));
    let (sq, sk) = (median(&mut secure.qemu), median(&mut secure.kernel));
    println!("Secure Boot against today's boot (x86-64 in QEMU, {accel:?}, medians of {ROUNDS}):");
    println!(
        "| | today (unsigned, plain OVMF) | Secure Boot (signed UKI, enrolled keys) | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| QEMU start → ready | {tq:.2} s | {sq:.2} s | {:.2}x |",
        sq / tq
    );
    println!(
        "| kernel start → ready | {tk:.2} s | {sk:.2} s | {:.2}x |",
        sk / tk
    );
    Ok(())
}

#[derive(Default)]
struct Samples {
    qemu: Vec<f64>,
    kernel: Vec<f64>,
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
    let path = dir.join(format!("{SIGNED_NAME}.toml"));
    std::fs::write(&path, renamed).map_err(|e| e.to_string())?;
    let recipes = workspace.join("recipes");
    std::fs::copy(
        recipes.join("x86-64-qemu.lock"),
        dir.join(format!("{SIGNED_NAME}.lock")),
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
