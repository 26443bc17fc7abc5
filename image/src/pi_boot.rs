//! A Raspberry Pi 5 image's boot files: autoboot.txt on p1, and slot A's boot partition as
//! the EEPROM firmware reads it (docs/boot-contract.md, "Raspberry Pi 5: tryboot"). The
//! firmware finds config.txt in the partition autoboot.txt names, loads `kernel=` and
//! `initramfs`, the device tree for the board, and passes cmdline.txt to the kernel.

use board_support::boot_control::pi_config::CONFIG_FILE;
use board_support::boot_control::{Autoboot, CMDLINE_FILE};

use crate::esp::EspFile;

/// The names config.txt gives the kernel and the initramfs in a boot partition.
pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRD_FILE: &str = "initrd";

/// p1's only file: both sections name slot A's boot partition, so every boot, with or
/// without the tryboot flag, boots slot A until the update service installs a trial.
pub fn config_partition_files(slot_a_partition: u32) -> Vec<EspFile> {
    let autoboot = Autoboot {
        boot_partition: slot_a_partition,
        tryboot_partition: slot_a_partition,
    };
    vec![EspFile {
        path: board_support::boot_control::AUTOBOOT_FILE.into(),
        data: autoboot.render().into_bytes(),
    }]
}

/// What one slot's boot partition holds.
pub struct SlotBoot<'a> {
    pub version: &'a str,
    /// The whole kernel command line, one line.
    pub cmdline: &'a str,
    pub vmlinuz: Vec<u8>,
    pub initrd: Vec<u8>,
    /// (file name on the partition, bytes).
    pub device_trees: Vec<(String, Vec<u8>)>,
    /// The recipe's `[boot] config_txt` lines, after ours.
    pub extra_config: &'a [String],
}

/// config.txt: 64-bit, our kernel and initramfs by name, the serial console's UART, and the
/// PM watchdog's device tree node (PID 1 arms it; its limit is 15 s).
pub fn config_txt(version: &str, extra: &[String]) -> String {
    let mut text = format!(
        "# Carapace {version}: written by carapace build, read by \
         the Pi firmware.\n\
         [all]\n\
         arm_64bit=1\n\
         kernel={KERNEL_FILE}\n\
         initramfs {INITRD_FILE} followkernel\n\
         enable_uart=1\n\
         dtparam=watchdog=on\n"
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The partition's files. cmdline.txt is what makes a slot installed (the update service
/// writes it last), so a fresh image has it in slot A only.
pub fn slot_files(slot: SlotBoot<'_>) -> Vec<EspFile> {
    let mut files = vec![
        EspFile {
            path: CONFIG_FILE.into(),
            data: config_txt(slot.version, slot.extra_config).into_bytes(),
        },
        EspFile {
            path: CMDLINE_FILE.into(),
            data: format!("{}\n", slot.cmdline).into_bytes(),
        },
        EspFile {
            path: KERNEL_FILE.into(),
            data: slot.vmlinuz,
        },
        EspFile {
            path: INITRD_FILE.into(),
            data: slot.initrd,
        },
    ];
    for (name, data) in slot.device_trees {
        files.push(EspFile { path: name, data });
    }
    files
}

/// A recipe line for config.txt must not undo what the image relies on: which kernel,
/// initramfs and command line the slot boots, and that it boots 64-bit. `None` when fine.
pub fn refused_config_line(line: &str) -> Option<&'static str> {
    let key = line
        .split(['=', ' '])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match key.as_str() {
        "kernel" | "initramfs" | "auto_initramfs" | "cmdline" | "os_prefix" | "arm_64bit" => {
            Some("it would change which kernel, initramfs or command line the slot boots")
        }
        _ if line.trim_start().starts_with('[') => {
            Some("a section filter would apply the image's own lines after it conditionally")
        }
        _ if line.contains('\n') => Some("it spans lines"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoboot_names_slot_a_in_both_sections() {
        let files = config_partition_files(2);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "autoboot.txt");
        let text = String::from_utf8(files[0].data.clone()).unwrap();
        assert_eq!(
            text,
            "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=2\n"
        );
    }

    #[test]
    fn config_txt_loads_our_kernel_and_initramfs_then_the_recipes_lines() {
        let text = config_txt("1.2.3", &["dtparam=pciex1_gen=3".into()]);
        assert_eq!(
            board_support::boot_control::pi_config::boot_files(&text),
            Some((KERNEL_FILE.into(), INITRD_FILE.into()))
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"kernel=vmlinuz"), "{text}");
        assert!(lines.contains(&"initramfs initrd followkernel"), "{text}");
        assert!(lines.contains(&"arm_64bit=1"), "{text}");
        assert_eq!(lines.last(), Some(&"dtparam=pciex1_gen=3"));
    }

    #[test]
    fn recipe_lines_that_would_change_what_boots_are_refused() {
        assert!(refused_config_line("kernel=other.img").is_some());
        assert!(refused_config_line("initramfs x followkernel").is_some());
        assert!(refused_config_line("[pi4]").is_some());
        assert!(refused_config_line("CMDLINE=x.txt").is_some());
        assert_eq!(
            refused_config_line("device_tree=bcm2712-d-rpi-5-b.dtb"),
            None
        );
        assert_eq!(refused_config_line("dtoverlay=vc4-kms-v3d"), None);
    }
}
