//! The two settings of a Pi boot partition's config.txt that say what it boots: `kernel=` and
//! `initramfs <file> followkernel`. The image builder writes them; the kexec trial
//! ([`super::TrialReboot::Kexec`]) and QEMU's firmware stand-in read them back the way the
//! firmware does: `#` starts a comment and a later setting wins.

/// The config.txt in the root of each slot's boot partition.
pub const CONFIG_FILE: &str = "config.txt";

/// (kernel file, initramfs file), both relative to the partition's root; `None` when either
/// is missing.
pub fn boot_files(config_txt: &str) -> Option<(String, String)> {
    let mut kernel = None;
    let mut initrd = None;
    for line in config_txt.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("kernel=") {
            kernel = Some(name.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("initramfs ") {
            initrd = rest.split_whitespace().next().map(String::from);
        }
    }
    let safe = |name: &String| !name.is_empty() && !name.contains("..") && !name.starts_with('/');
    Some((kernel.filter(safe)?, initrd.filter(safe)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_and_initramfs_as_the_firmware_would() {
        let text =
            "# kernel=old\n[all]\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd followkernel\n";
        assert_eq!(boot_files(text), Some(("vmlinuz".into(), "initrd".into())));
        assert_eq!(
            boot_files("kernel=a\nkernel=b\ninitramfs i\n"),
            Some(("b".into(), "i".into())),
            "the later setting wins"
        );
        assert_eq!(boot_files("# kernel=x\ninitramfs y"), None);
        assert_eq!(boot_files("kernel=x\n"), None);
        assert_eq!(
            boot_files("kernel=../x\ninitramfs y\n"),
            None,
            "outside the partition"
        );
    }
}
