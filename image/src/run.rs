//! `carapace run`: boots the recipe's image in QEMU with the serial console on the terminal.
//! The machine's disk is a qcow2 overlay in out/<name>/run/, kept between runs (so /data
//! persists like on a real box) until `--fresh`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::board;
use crate::build::{Paths, build};
use crate::error::{Error, IoContext, Result};
use crate::qemu::{Network, Vm, VmConfig, create_overlay};
use crate::recipe::Recipe;

pub const READY_LINE: &str = "carapace: ready slot=";
/// The virtual disk is bigger than the image: init grows /data into the rest.
pub const RUN_DISK_GIB: u32 = 4;

pub struct RunOptions {
    pub until_ready: bool,
    pub timeout: Duration,
    pub fresh: bool,
    /// Boot the Secure Boot firmware with the build's keys enrolled.
    pub secure_boot: bool,
    /// Give the machine a software TPM 2.0 (swtpm), its state in out/<name>/run/tpm: the box
    /// encrypts a /data it formats and seals the key to it.
    pub tpm: bool,
}

/// The recipe's image, built first when no finished build is there.
pub fn built_image(recipe_path: &Path, workspace: &Path) -> Result<PathBuf> {
    let (recipe, _) = Recipe::load(recipe_path)?;
    let outputs = Paths::for_recipe(workspace, &recipe).outputs();
    // sbom.json is the last output a build writes: without it the build did not finish.
    if !outputs.image.exists() || !outputs.sbom.exists() {
        eprintln!(
            "carapace: {} is missing; building it first",
            outputs.image.display()
        );
        build(recipe_path, workspace)?;
    }
    Ok(outputs.image)
}

pub fn run(recipe_path: &Path, workspace: &Path, options: &RunOptions) -> Result<()> {
    let (recipe, _) = Recipe::load(recipe_path)?;
    let board = board::find(&recipe.board)?;
    let paths = Paths::for_recipe(workspace, &recipe);
    let image = built_image(recipe_path, workspace)?;
    let run_dir = paths.out.join("run");
    std::fs::create_dir_all(&run_dir).context(|| format!("create {}", run_dir.display()))?;
    let disk: PathBuf = run_dir.join("disk.qcow2");
    let image_newer = modified(&image) > modified(&disk);
    let fresh_disk = options.fresh || !disk.exists() || image_newer;
    if fresh_disk {
        create_overlay(&image, &disk, RUN_DISK_GIB)?;
    }
    let mut config = VmConfig::for_image(board, &image, disk, &run_dir)?;
    if options.secure_boot {
        config.secure_boot(&paths.out.join(crate::secure_boot::ENROLLED_VARS))?;
    }
    let tpm_state = run_dir.join("tpm");
    if fresh_disk {
        // A new disk gets a new TPM too, as a new box would.
        let _ = std::fs::remove_dir_all(&tpm_state);
    }
    if options.tpm {
        config.tpm(&tpm_state);
    }
    // The variable store starts over with the disk, and whenever the firmware changes: a
    // store from the other firmware would boot with the wrong keys, or none.
    let firmware_stamp = run_dir.join("firmware");
    let firmware = if options.secure_boot {
        "secure-boot"
    } else {
        "plain"
    };
    let same_firmware = std::fs::read_to_string(&firmware_stamp).is_ok_and(|f| f == firmware);
    if fresh_disk || !same_firmware {
        let _ = std::fs::remove_file(&config.vars);
        std::fs::write(&firmware_stamp, firmware)
            .context(|| format!("write {}", firmware_stamp.display()))?;
    }
    config.echo = true;
    // A developer's box reaches the network through QEMU's NAT (its own firewall decides
    // what); a boot that only measures readiness sends nothing off this machine.
    config.network = if options.until_ready {
        Network::Isolated
    } else {
        Network::User
    };
    config.prepare()?;
    eprintln!(
        "carapace: booting {} under {:?} (Ctrl-C stops it)",
        image.display(),
        config.accel
    );

    if !options.until_ready {
        let status = config
            .command()
            .status()
            .map_err(|e| Error::Qemu(format!("start {}: {e}", config.machine.system_binary)))?;
        if config.direct_kernel.is_some() {
            // -no-reboot: the firmware stand-in reads the disk before each boot, not QEMU.
            eprintln!(
                "carapace: the machine reset or powered off; the Pi firmware stand-in ends there (carapace run starts it again from the image's boot partitions)"
            );
        }
        return if status.success() {
            Ok(())
        } else {
            Err(Error::Qemu(format!("QEMU exited with {status}")))
        };
    }

    let mut vm = Vm::start(&config)?;
    let (_, line) = vm.wait_for(READY_LINE, 0, options.timeout)?;
    let from_start = vm.started.elapsed();
    vm.power_button()?;
    vm.wait_exit(Duration::from_secs(60))?;
    let boot_ms = line.split("boot_ms=").nth(1).unwrap_or("?").trim();
    println!(
        "carapace: ready {:.1} s after QEMU started (kernel start to ready: {boot_ms} ms); powered off",
        from_start.as_secs_f64()
    );
    Ok(())
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
