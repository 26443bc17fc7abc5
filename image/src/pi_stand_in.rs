//! What the Raspberry Pi 5's firmware does before Linux, done for QEMU's virt machine, which
//! stands in for the board: read autoboot.txt on p1, take the partition its `[all]` section
//! names (or `[tryboot]`'s, for a tryboot), read that partition's config.txt for the kernel
//! and initramfs file names and its cmdline.txt, and hand them to QEMU as a direct kernel
//! boot. A partition whose config.txt says `boot_ramdisk=1` (a signed image's) is read as
//! the firmware reads it then: config.txt, cmdline.txt and the files they name come from inside
//! its boot.img (boot.sig is not checked: that is the EEPROM's part, once the owner turns it
//! on). virt's device tree gets a `serial10` alias for its PL011, so the command line's
//! `console=ttyAMA10` (the Pi's debug UART) names it as on the board: the command line is
//! passed as it is, also when the box kexecs a trial with it.
//!
//! The firmware runs at every reset, so QEMU runs with `-no-reboot`: a reset ends the machine,
//! and whoever started it starts it again, which reads the disk anew.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use board_support::boot_control::pi_config::{self, CONFIG_FILE};
use board_support::boot_control::{AUTOBOOT_FILE, Autoboot, CMDLINE_FILE};

use crate::error::{Error, IoContext, Result};
use crate::{fat_partition, pi_signed_boot};

/// `-kernel`, `-initrd`, `-append`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectKernel {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    /// The partition the firmware would have booted.
    pub boot_partition: u32,
    /// virt's device tree with the Pi's UART alias (written by [`device_tree`]).
    pub device_tree: PathBuf,
}

/// The alias that makes the PL011 ttyAMA10, the Pi 5's debug UART.
const PI_UART_ALIAS: &str = "serial10";

/// Reads `image` (raw) as the firmware would and writes the chosen slot's kernel and initramfs
/// into `dir`.
pub fn boot_files(image: &Path, dir: &Path, tryboot: bool) -> Result<DirectKernel> {
    let fail = |what: String| Error::image(format!("the Pi firmware stand-in: {what}"));
    let disk = File::open(image).context(|| format!("open {}", image.display()))?;
    let length = disk
        .metadata()
        .context(|| format!("stat {}", image.display()))?
        .len();
    let read = |partition: u32, name: &str| -> Result<Vec<u8>> {
        let fs = fat_partition::open(&disk, length, partition)
            .map_err(|e| fail(format!("{}: {e}", image.display())))?;
        let mut file = fs
            .root_dir()
            .open_file(name)
            .map_err(|e| fail(format!("{name} on partition {partition}: {e}")))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| fail(format!("{name} on partition {partition}: {e}")))?;
        Ok(bytes)
    };
    let autoboot_bytes = read(1, AUTOBOOT_FILE)?;
    let autoboot = Autoboot::parse(&autoboot_bytes, Path::new(AUTOBOOT_FILE))
        .map_err(|e| fail(e.to_string()))?;
    let partition = if tryboot {
        autoboot.tryboot_partition
    } else {
        autoboot.boot_partition
    };
    let outer_config = String::from_utf8_lossy(&read(partition, CONFIG_FILE)?).into_owned();
    // The files the firmware boots: from the partition, or from the ramdisk it names.
    let ramdisk = if pi_signed_boot::boots_ramdisk(&outer_config) {
        Some(read(partition, pi_signed_boot::BOOT_IMAGE)?)
    } else {
        None
    };
    let boot_file = |name: &str| -> Result<Vec<u8>> {
        match &ramdisk {
            None => read(partition, name),
            Some(image) => pi_signed_boot::read_file(image, name)
                .map_err(|e| fail(format!("partition {partition}: {e}"))),
        }
    };
    let config = String::from_utf8_lossy(&boot_file(CONFIG_FILE)?).into_owned();
    let (kernel_name, initrd_name) = pi_config::boot_files(&config).ok_or_else(|| {
        fail(format!(
            "{CONFIG_FILE} on partition {partition} names no kernel= and initramfs"
        ))
    })?;
    let cmdline = String::from_utf8_lossy(&boot_file(CMDLINE_FILE)?).into_owned();
    let kernel = dir.join("pi-kernel");
    let initrd = dir.join("pi-initrd");
    std::fs::write(&kernel, boot_file(&kernel_name)?)
        .context(|| format!("write {}", kernel.display()))?;
    std::fs::write(&initrd, boot_file(&initrd_name)?)
        .context(|| format!("write {}", initrd.display()))?;
    Ok(DirectKernel {
        kernel,
        initrd,
        append: cmdline.trim().to_owned(),
        boot_partition: partition,
        device_tree: dir.join("pi-virt.dtb"),
    })
}

/// Dumps the device tree QEMU makes for `machine` (the command that boots it, which exits
/// once the tree is written) and gives its console UART the Pi's alias.
pub fn device_tree(mut machine: std::process::Command, out: &Path) -> Result<()> {
    crate::tools::require("fdtput", "device-tree-compiler")?;
    let _ = std::fs::remove_file(out);
    crate::tools::output(
        machine
            .arg("-machine")
            .arg(format!("dumpdtb={}", out.display())),
    )?;
    let uart = crate::tools::output(
        std::process::Command::new("fdtget")
            .arg(out)
            .args(["/chosen", "stdout-path"]),
    )?;
    crate::tools::output(
        std::process::Command::new("fdtput")
            .arg(out)
            .args(["-c", "/aliases"]),
    )?;
    crate::tools::output(std::process::Command::new("fdtput").arg(out).args([
        "-t",
        "s",
        "/aliases",
        PI_UART_ALIAS,
        uart.trim(),
    ]))?;
    Ok(())
}
