//! `make bench`: what a box downloads for an update, with Carapace's content-defined chunks
//! beside a full-image update, for real builds of the test recipe:
//! - the release a box runs: the checkout as it is;
//! - an agentd-only update: the same checkout with one help string in agentd made longer;
//! - a kernel-only update: the same checkout with the lock's kernel pin moved to another
//!   Debian build of the kernel that the download cache holds (from the older to the newer).
//!
//! The changed releases are built by the builder itself in a scratch copy of the checkout
//! (target/update-size-bench/workspace, kept between runs with its own target directory: the
//! first run compiles everything once, later ones only what the change touches); the
//! checkout is never edited. The slots measured are kept in out/bench/update-size/. Progress
//! goes to stderr, the table to stdout.
//!
//! This target has no libtest harness: `cargo bench` passes `--bench` and gets the benchmark;
//! `cargo test -p carapace-tests --benches` runs it without and gets the self-checks.

#[path = "images/error.rs"]
mod error;
#[path = "update_size/other_kernel.rs"]
mod other_kernel;
#[path = "update_size/scratch.rs"]
mod scratch;
#[path = "update_size/table.rs"]
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use carapace_image::lock::Lock;
use carapace_image::recipe::Recipe;
use carapace_image::slot_files;
use carapace_image::update_size::{self, SizeReport};
use carapace_update::ChunkerParams;
use error::{Context, Result, fail};
use scratch::Scratch;
use table::Row;

const RECIPE: &str = "recipes/x86-64-qemu-test.toml";

/// The agentd-only change: one string of agentd's, longer (its command menu's help line),
/// as a small release would change it.
const AGENTD_FILE: &str = "agentd/src/commands.rs";
const AGENTD_FROM: &str = r#"("help", "What I can do")"#;
const AGENTD_TO: &str = r#"("help", "What I can do, and how to ask me for it")"#;

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
    let checks = [table::CHECKS, scratch::CHECKS, other_kernel::CHECKS].concat();
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
    let checkout = workspace()?;
    let out = checkout.join("out/bench/update-size");
    let cache = carapace_image::build::default_cache(&checkout);

    eprintln!("bench: building {RECIPE} from the checkout (the release a box runs)");
    let base = build_slot(&checkout, &out.join("base"))?;

    let scratch_root = checkout.join("target/update-size-bench/workspace");
    eprintln!(
        "bench: the agentd-only release, built in {} (the first run compiles everything there)",
        scratch_root.display()
    );
    let scratch = Scratch::sync(&checkout, &scratch_root)?;
    scratch.replace(AGENTD_FILE, AGENTD_FROM, AGENTD_TO)?;
    let agentd = build_slot(&scratch.root, &out.join("agentd"))?;
    let agentd_row = Row {
        update: format!("agentd only: one help string longer ({AGENTD_FILE})"),
        measured: Ok(measure(&base, &agentd)?),
    };

    // The scratch copy as the checkout again, but for the kernel pin.
    let scratch = Scratch::sync(&checkout, &scratch_root)?;
    let kernel_row = kernel_update(&scratch, &cache, &base, &out.join("kernel"))?;

    println!(
        "## What a box downloads for an update ({RECIPE})\n\n{}\n\
         - Chunks: the distinct content-defined chunks (FastCDC, 16/64/256 KiB) of the new \
         slot's root image (erofs and its dm-verity tree), vmlinuz and initrd that the running \
         slot lacks, plus the chunk list the manifest carries (`carapace update-size`).\n\
         - Chunks or patches: each file by its lacking chunks or by a patch from the running \
         release's file (zstd -12 with the old file as reference, long-distance matching), \
         whichever is smaller, as a box plans it from a bundle made with `--patch-from`.\n\
         - Whole image: the same three files downloaded whole, raw and compressed with zstd -3; \
         full-image updaters (RAUC, Mender, Bottlerocket by default) ship the whole image \
         compressed, and zstd -3 stands in for their compressors.\n\
         - agentd only: the checkout with `{AGENTD_FROM}` in {AGENTD_FILE} changed to \
         `{AGENTD_TO}`, built by the builder in a scratch copy of the checkout.\n\
         - Kernel only: the checkout with the lock's kernel pin moved to another Debian build \
         from the download cache: the root's modules, vmlinuz and the initramfs change.\n\
         - The slots are in {}.\n",
        table::render(&[agentd_row, kernel_row]),
        out.display()
    );
    Ok(())
}

/// The kernel-only update, or why there is none to measure.
fn kernel_update(scratch: &Scratch, cache: &Path, base: &Path, out: &Path) -> Result<Row> {
    let recipe = scratch.root.join(RECIPE);
    let (loaded, _) = Recipe::load(&recipe).context(|| format!("read {RECIPE}"))?;
    let board = carapace_image::build::board_for(&loaded).context(|| "its board".into())?;
    let lock_path = Recipe::lock_path(&recipe);
    let lock = Lock::read(&lock_path)
        .context(|| format!("read {}", lock_path.display()))?
        .ok_or_else(|| fail(format!("{} is missing", lock_path.display())))?;
    let metapackage = board
        .kernel
        .debian()
        .map(|kernel| kernel.metapackage)
        .ok_or_else(|| fail(format!("{RECIPE}'s board has no Debian kernel")))?;
    let pin = other_kernel::pinned(&lock, metapackage)?;
    let Some(other) = other_kernel::find(cache, pin)? else {
        return Ok(Row {
            update: "kernel only".into(),
            measured: Err(format!(
                "the download cache ({}) holds no Debian kernel but the pinned {} {}; a build \
                 from an older lock leaves the older one there",
                cache.join("debs").display(),
                pin.name,
                pin.version
            )),
        });
    };
    eprintln!(
        "bench: the kernel-only release ({} {} instead of {} {}), built in {}",
        other.name,
        other.version,
        pin.name,
        pin.version,
        scratch.root.display()
    );
    other_kernel::with_kernel(&lock, &other)
        .write(&lock_path)
        .context(|| format!("write {}", lock_path.display()))?;
    let kernel = build_slot(&scratch.root, out)?;
    let older_first = other_kernel::is_older(&other, pin);
    let (from, to, old, new) = if older_first {
        (&other, pin, kernel.as_path(), base)
    } else {
        (pin, &other, base, kernel.as_path())
    };
    Ok(Row {
        update: format!(
            "kernel only: {} {} → {} {}",
            from.name, from.version, to.name, to.version
        ),
        measured: Ok(measure(old, new)?),
    })
}

/// Builds the test recipe in `workspace` and keeps a copy of its slot in `keep`.
fn build_slot(workspace: &Path, keep: &Path) -> Result<PathBuf> {
    let recipe = workspace.join(RECIPE);
    carapace_image::build::build(&recipe, workspace)
        .context(|| format!("build {RECIPE} in {}", workspace.display()))?;
    let (loaded, _) = Recipe::load(&recipe).context(|| format!("read {RECIPE}"))?;
    let slot = workspace
        .join("out")
        .join(&loaded.name)
        .join(slot_files::DIR);
    let _ = std::fs::remove_dir_all(keep);
    std::fs::create_dir_all(keep).context(|| format!("create {}", keep.display()))?;
    for name in std::iter::once(slot_files::ROOT_IMAGE)
        .chain(slot_files::BOOT_FILES)
        .chain([slot_files::INFO])
    {
        std::fs::copy(slot.join(name), keep.join(name))
            .context(|| format!("copy {} to {}", slot.join(name).display(), keep.display()))?;
    }
    Ok(keep.into())
}

fn measure(old: &Path, new: &Path) -> Result<SizeReport> {
    update_size::measure(&[old.into()], &[new.into()], ChunkerParams::DEFAULT).context(|| {
        format!(
            "measure the update from {} to {}",
            old.display(),
            new.display()
        )
    })
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
