//! `carapace`: build Carapace images from recipes and boot them in QEMU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use carapace_image::build::{build, find_workspace};
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
        Command::Build { recipe } => build(&recipe, &workspace).map(|out| {
            println!(
                "{}\n{}\n{}",
                out.image.display(),
                out.image_zst.display(),
                out.sbom.display()
            );
        }),
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
