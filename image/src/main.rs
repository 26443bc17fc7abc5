//! `carapace`: build Carapace images from recipes and boot them in QEMU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use carapace_image::build::{BuildOptions, build_with, find_workspace, lock_recipe};
use carapace_image::packages::UpdateRequest;
use carapace_image::run::{RunOptions, run};

#[derive(Parser)]
#[command(
    name = "carapace",
    version,
    about = "Build Carapace appliance images and boot them in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build out/<name>/carapace.img, carapace.img.zst and sbom.json from a recipe.
    Build {
        #[arg(long)]
        recipe: PathBuf,
        /// Refuse to move a pinned package the archive dropped (release builds).
        #[arg(long)]
        locked: bool,
    },
    /// Bring the recipe's lock file in line with the recipe and the archive; with --update,
    /// move pins (all, or the named packages) to the archive's current versions.
    Lock {
        #[arg(long)]
        recipe: PathBuf,
        #[arg(long, num_args = 0.., value_name = "PKG")]
        update: Option<Vec<String>>,
    },
    /// Boot the recipe's image in QEMU (building it first if it is missing).
    Run {
        #[arg(long)]
        recipe: PathBuf,
        /// Wait for the ready line, press the power button over QMP, exit 0.
        #[arg(long)]
        until_ready: bool,
        /// Seconds to wait for the ready line with --until-ready.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Start from a fresh disk (first boot again).
        #[arg(long)]
        fresh: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = find_workspace().and_then(|workspace| match cli.command {
        Command::Build { recipe, locked } => {
            build_with(&recipe, &workspace, BuildOptions { locked }).map(|out| {
                println!(
                    "{}\n{}\n{}",
                    out.image.display(),
                    out.image_zst.display(),
                    out.sbom.display()
                );
            })
        }
        Command::Lock { recipe, update } => {
            let update = match update {
                None => UpdateRequest::None,
                Some(names) if names.is_empty() => UpdateRequest::All,
                Some(names) => UpdateRequest::Only(names),
            };
            lock_recipe(&recipe, &workspace, &update).map(|resolved| {
                if resolved.changes.is_empty() {
                    eprintln!(
                        "carapace: the lock is up to date ({} packages)",
                        resolved.lock.packages.len()
                    );
                }
            })
        }
        Command::Run {
            recipe,
            until_ready,
            timeout,
            fresh,
        } => run(
            &recipe,
            &workspace,
            &RunOptions {
                until_ready,
                timeout: Duration::from_secs(timeout),
                fresh,
            },
        ),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carapace: error: {e}");
            ExitCode::FAILURE
        }
    }
}
