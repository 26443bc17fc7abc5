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
        /// The owner's settings (IM bot, LLM providers): put on carapace.img's boot partition
        /// with a one-time pairing code, whose link is printed as a QR code.
        #[arg(long, value_name = "FILE")]
        owner_settings: Option<PathBuf>,
    },
    /// The audit log a box keeps (agentd's /data/agentd/audit.log).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an exported log: the chain of hashes and every signature.
    Verify { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Audit {
        command: AuditCommand::Verify { file },
    } = &cli.command
    {
        return audit_verify(file);
    }
    let result = find_workspace().and_then(|workspace| match cli.command {
        Command::Build {
            recipe,
            locked,
            owner_settings,
        } => {
            let settings = owner_settings
                .as_deref()
                .map(|file| carapace_image::owner::load(file, &recipe))
                .transpose()?;
            let out = build_with(&recipe, &workspace, BuildOptions { locked })?;
            println!(
                "{}\n{}\n{}",
                out.image.display(),
                out.image_zst.display(),
                out.sbom.display()
            );
            match settings {
                Some(settings) => {
                    print_pairing(&carapace_image::owner::personalise(&out.image, &settings)?)
                }
                None => Ok(()),
            }
        }
        Command::Audit { .. } => Ok(()),
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

fn print_pairing(pairing: &carapace_image::owner::Pairing) -> carapace_image::error::Result<()> {
    eprintln!(
        "carapace: owner settings are on carapace.img's boot partition (the .zst stays generic)"
    );
    if let Some(qr) = &pairing.qr_text {
        eprintln!("\n{qr}");
    }
    match &pairing.link {
        Some(link) => {
            eprintln!("Once the box is running, scan the code above or open {link} to pair it.")
        }
        None => eprintln!(
            "Once the box is running, send the bot this code to pair it: {}",
            pairing.code
        ),
    }
    if let Some(png) = &pairing.qr_png {
        eprintln!("The QR code is also in {}.", png.display());
    }
    Ok(())
}

fn audit_verify(file: &std::path::Path) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("carapace: error: reading {}: {error}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match carapace_audit::verify(&bytes) {
        Ok(report) => {
            println!(
                "{}: verifies: {} entries, signed by ed25519 key {}, last hash {}",
                file.display(),
                report.entries.len(),
                report.key,
                report.last_hash
            );
            println!("Compare the key with the one the box shows in /status.");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("carapace: {}: does NOT verify: {failure}", file.display());
            ExitCode::FAILURE
        }
    }
}
