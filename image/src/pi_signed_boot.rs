//! A Raspberry Pi 5 slot's boot partition for the EEPROM firmware's signed boot
//! (docs/boot-contract.md, "Raspberry Pi 5: signed boot"). The Pi has no UEFI Secure Boot; its
//! firmware, with SIGNED_BOOT=1 in the EEPROM's configuration and the customer key's hash in
//! OTP, loads nothing from a boot partition but `boot.img`, a FAT image it then reads as the
//! partition (a ramdisk), and only when `boot.sig`'s signature over it verifies with that key.
//! So everything a slot boots goes inside boot.img: config.txt, cmdline.txt (with the root's
//! verity hash), the kernel, the initramfs and the device trees, signed with db.key.
//! Before the EEPROM enforces it, the outer config.txt's `boot_ramdisk=1` has the firmware boot
//! the same ramdisk without checking it, so one image serves both states.
//!
//! boot.sig is three lines of text, as Raspberry Pi's `rpi-eeprom-digest -k` writes them
//! (raspberrypi/rpi-eeprom; usbboot's docs/secure-boot.md and secure-boot-example):
//! ```text
//! <SHA-256 of boot.img, lowercase hex>
//! ts: <seconds since 1970: the build's SOURCE_DATE_EPOCH, so rebuilds are byte-identical>
//! rsa2048: <RSA 2048 PKCS#1 v1.5 signature of SHA-256(boot.img), lowercase hex>
//! ```
//!
//! cmdline.txt stays outside boot.img too, with the same line: it is boot control's mark that
//! the slot is installed (`board_support::boot_control::CMDLINE_FILE`, written last and removed
//! on retire), and what whoever reads the partition (the QEMU stand-in, a person) sees the slot
//! boot. In ramdisk mode the firmware never reads it: the line that boots is the signed one.

use std::io::{Cursor, Read};

use board_support::Slot;
use board_support::boot_control::CMDLINE_FILE;
use board_support::boot_control::pi_config::CONFIG_FILE;

use crate::error::{Error, Result};
use crate::esp::{EspFile, FatFormat, build_fat};
use crate::fsutil::sha256_hex;
use crate::secure_boot::SecureBootKeys;

/// The ramdisk the firmware loads, and its signature file, in the slot's boot partition.
pub const BOOT_IMAGE: &str = "boot.img";
pub const BOOT_SIGNATURE: &str = "boot.sig";
/// The outer config.txt's one setting: boot from boot.img, also while the EEPROM does not
/// enforce signatures yet.
pub const RAMDISK_SETTING: &str = "boot_ramdisk=1";

/// What a build keeps of slot `slot`'s signed pair in out/<recipe>/slot (`boot-a.img`,
/// `boot-a.sig`): each slot's boot.img carries its own command line (its root partition), so
/// a build signs one per slot, as it makes one UKI per slot on UEFI.
pub fn slot_file_names(slot: Slot) -> [String; 2] {
    let letter = slot.letter();
    [format!("boot-{letter}.img"), format!("boot-{letter}.sig")]
}

/// Whether a slot's boot files (slot.json's `boot_files`) are a signed Pi slot's.
pub fn is_signed_slot(boot_files: &[String]) -> bool {
    let [image, _] = slot_file_names(Slot::A);
    boot_files.contains(&image)
}

/// The partition's own config.txt: only what makes the firmware read boot.img.
pub fn outer_config_txt(version: &str) -> String {
    format!(
        "# Carapace {version}: written by carapace build. The slot boots boot.img (signed in \
         boot.sig);\n# this file is outside it and says only that.\n\
         {RAMDISK_SETTING}\n"
    )
}

/// boot.img: a FAT file system holding `files` (a slot's boot files, `pi_boot::slot_files`),
/// sized to them: the firmware holds it in memory whole. Bytes are a function of the inputs.
pub fn boot_image(files: &[EspFile], volume_id: u32) -> Result<Vec<u8>> {
    const MIB: u64 = 1 << 20;
    let content: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    // Clusters are at most 4 KiB at these sizes (fatfs picks FAT16 with 2 KiB up to 128 MiB):
    // a cluster's slack and a long name's entries per file, two FATs of 2 bytes a cluster,
    // the root directory and the reserved sectors.
    let estimate = content + content / 32 + files.len() as u64 * 8192 + MIB / 2;
    let mut size = estimate.div_ceil(MIB) * MIB;
    let format = FatFormat {
        what: BOOT_IMAGE,
        fat_type: None,
        volume_id,
    };
    // The estimate fits every slot seen; should it not, grow by an eighth and try again.
    for _ in 0..8 {
        match build_fat(size, &format, files, |path| {
            Error::DoesNotFit(format!("{path} in {BOOT_IMAGE}"))
        }) {
            Err(Error::DoesNotFit(_)) => size = (size + size / 8).div_ceil(MIB) * MIB,
            made => return made,
        }
    }
    Err(Error::image(format!(
        "{BOOT_IMAGE}: {} MiB of files did not fit in {} MiB",
        content.div_ceil(MIB),
        size / MIB
    )))
}

/// boot.sig's text for `image`, signed at `timestamp` with `rsa2048` (256 bytes).
pub fn signature_text(image: &[u8], timestamp: u64, rsa2048: &[u8]) -> String {
    format!(
        "{}\nts: {timestamp}\nrsa2048: {}\n",
        sha256_hex(image),
        hex::encode(rsa2048)
    )
}

/// One slot's signed ramdisk.
pub struct SignedBoot {
    pub image: Vec<u8>,
    /// boot.sig's bytes.
    pub signature: Vec<u8>,
}

/// `files` as boot.img, signed with db.key at `timestamp`.
pub fn sign(
    files: &[EspFile],
    volume_id: u32,
    timestamp: u64,
    keys: &SecureBootKeys,
) -> Result<SignedBoot> {
    let image = boot_image(files, volume_id)?;
    let rsa2048 = keys.sign_rsa2048_sha256(&image, BOOT_IMAGE)?;
    let signature = signature_text(&image, timestamp, &rsa2048).into_bytes();
    Ok(SignedBoot { image, signature })
}

/// The partition's files: config.txt with `boot_ramdisk=1`, boot.img, boot.sig, and
/// cmdline.txt (the installed mark, `cmdline` being the line signed inside).
pub fn partition_files(version: &str, cmdline: &str, signed: SignedBoot) -> Vec<EspFile> {
    vec![
        EspFile {
            path: CONFIG_FILE.into(),
            data: outer_config_txt(version).into_bytes(),
        },
        EspFile {
            path: BOOT_IMAGE.into(),
            data: signed.image,
        },
        EspFile {
            path: BOOT_SIGNATURE.into(),
            data: signed.signature,
        },
        EspFile {
            path: CMDLINE_FILE.into(),
            data: format!("{cmdline}\n").into_bytes(),
        },
    ]
}

/// Whether a config.txt sends the firmware to boot.img (a later setting wins, as it reads
/// them).
pub fn boots_ramdisk(config_txt: &str) -> bool {
    config_txt
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("boot_ramdisk="))
        .next_back()
        .is_some_and(|value| value.trim() == "1")
}

/// The file at `path` inside a boot.img, as the firmware finds it there.
pub fn read_file(image: &[u8], path: &str) -> std::result::Result<Vec<u8>, String> {
    // fatfs opens only what it could write; a copy keeps the caller's bytes as they are.
    let fs = fatfs::FileSystem::new(Cursor::new(image.to_vec()), fatfs::FsOptions::new())
        .map_err(|e| format!("{BOOT_IMAGE} is no FAT file system: {e}"))?;
    let mut file = fs
        .root_dir()
        .open_file(path)
        .map_err(|e| format!("{path} in {BOOT_IMAGE}: {e}"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("{path} in {BOOT_IMAGE}: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn slot_files() -> Vec<EspFile> {
        let mut files = crate::pi_boot::slot_files(crate::pi_boot::SlotBoot {
            version: "1.0.0",
            cmdline: "console=ttyAMA10,115200 carapace.slot=a",
            vmlinuz: (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            initrd: vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
            device_trees: vec![("bcm2712-rpi-5-b.dtb".into(), vec![0xd0, 0x0d, 0xfe, 0xed])],
            extra_config: &[],
        });
        files.push(EspFile {
            path: "overlays/bcm2712d0.dtbo".into(),
            data: vec![9; 1500],
        });
        files
    }

    #[test]
    fn boot_img_holds_the_slots_files_is_reproducible_and_sized_to_them() {
        let files = slot_files();
        let image = boot_image(&files, 0x1234_5678).unwrap();
        assert!(
            image == boot_image(&files, 0x1234_5678).unwrap(),
            "not reproducible"
        );
        for file in &files {
            assert_eq!(
                read_file(&image, &file.path).unwrap(),
                file.data,
                "{}",
                file.path
            );
        }
        let content: usize = files.iter().map(|f| f.data.len()).sum();
        assert!(
            image.len() < content + 2 * 1024 * 1024,
            "{} bytes for {content} bytes of files",
            image.len()
        );
        let err = read_file(&image, "kernel8.img").unwrap_err();
        assert!(err.contains("kernel8.img in boot.img"), "{err}");
    }

    #[test]
    fn the_outer_config_boots_the_ramdisk_and_names_no_kernel() {
        let text = outer_config_txt("1.0.0");
        assert!(boots_ramdisk(&text), "{text}");
        assert_eq!(
            board_support::boot_control::pi_config::boot_files(&text),
            None,
            "the kernel is inside boot.img only"
        );
        assert!(!boots_ramdisk("boot_ramdisk=1\nboot_ramdisk=0\n"));
        assert!(!boots_ramdisk("# boot_ramdisk=1\n"));
    }

    #[test]
    fn boot_sig_is_the_digest_the_time_and_the_signature_in_hex() {
        let text = signature_text(b"abc", 1_767_225_600, &[0xab, 0x01]);
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
             ts: 1767225600\nrsa2048: ab01\n"
        );
    }

    fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl")
    }

    #[test]
    fn boot_sig_verifies_with_db_crt_and_not_for_a_changed_boot_img() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        crate::secure_boot::generate(&keys_dir, "Test").unwrap();
        let keys = SecureBootKeys::open_signing_key(&keys_dir).unwrap();
        let signed = sign(&slot_files(), 7, 1_767_225_600, &keys).unwrap();
        let text = String::from_utf8(signed.signature.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], sha256_hex(&signed.image));
        assert_eq!(lines[1], "ts: 1767225600");
        let hex_signature = lines[2].strip_prefix("rsa2048: ").expect("rsa2048 line");
        assert_eq!(hex_signature.len(), 512, "RSA 2048 is 256 bytes");

        // The check rpi-eeprom-digest -v makes, with the public key from db.crt.
        std::fs::write(dir.path().join("boot.img"), &signed.image).unwrap();
        std::fs::write(dir.path().join("sig"), hex::decode(hex_signature).unwrap()).unwrap();
        let crt = keys_dir.join("db.crt");
        let public = openssl(
            &["x509", "-noout", "-pubkey", "-in", crt.to_str().unwrap()],
            dir.path(),
        );
        std::fs::write(dir.path().join("pub.pem"), &public.stdout).unwrap();
        let verify = ["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig"];
        let good = openssl(&[&verify[..], &["boot.img"]].concat(), dir.path());
        assert!(
            good.status.success(),
            "{}",
            String::from_utf8_lossy(&good.stderr)
        );
        let mut changed = signed.image.clone();
        let at = changed.len() / 2;
        changed[at] ^= 1;
        std::fs::write(dir.path().join("changed.img"), &changed).unwrap();
        let bad = openssl(&[&verify[..], &["changed.img"]].concat(), dir.path());
        assert!(!bad.status.success(), "a changed boot.img verified");
        let said = String::from_utf8_lossy(&bad.stdout);
        assert!(said.contains("Verification failure"), "{said}");
    }

    #[test]
    fn a_key_the_firmware_cannot_verify_or_a_certificate_of_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        crate::secure_boot::generate(&keys_dir, "Test").unwrap();
        let other = dir.path().join("other");
        crate::secure_boot::generate(&other, "Other").unwrap();

        // db.crt of another key: what the owner would put into the EEPROM would not verify.
        std::fs::copy(other.join("db.crt"), keys_dir.join("db.crt")).unwrap();
        let keys = SecureBootKeys::open_signing_key(&keys_dir).unwrap();
        let err = keys.sign_rsa2048_sha256(b"x", "x").unwrap_err().to_string();
        assert!(err.contains("does not hold the public key of"), "{err}");

        // An RSA 4096 key signs, but the Pi's firmware verifies only RSA 2048.
        let big = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:4096",
            ],
            dir.path(),
        );
        std::fs::write(keys_dir.join("db.key"), &big.stdout).unwrap();
        let err = keys.sign_rsa2048_sha256(b"x", "x").unwrap_err().to_string();
        assert!(err.contains("is not an RSA 2048 key"), "{err}");

        // A Pi key needs only db's pair; the message says how to bring one made before.
        std::fs::remove_file(keys_dir.join("db.crt")).unwrap();
        let err = SecureBootKeys::open_signing_key(&keys_dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lacks db.crt") && err.contains("openssl req"),
            "{err}"
        );
    }

    #[test]
    fn slot_file_names_mark_a_signed_slot() {
        assert_eq!(slot_file_names(Slot::B), ["boot-b.img", "boot-b.sig"]);
        let unsigned: Vec<String> = ["config.txt", "vmlinuz", "initrd"]
            .map(String::from)
            .to_vec();
        assert!(!is_signed_slot(&unsigned));
        let mut signed = unsigned;
        signed.extend(slot_file_names(Slot::A));
        assert!(is_signed_slot(&signed));
    }
}
