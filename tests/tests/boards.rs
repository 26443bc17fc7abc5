//! The images for real hardware, checked for what the hardware needs: recipes/x86-64.toml
//! (mini PCs) carries the drivers and firmware of their disks, NICs, Wi-Fi and iGPU in its
//! verified root, read back from the built root image itself; and it still boots (in QEMU,
//! with none of that hardware present).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_image::qemu::VmConfig;
use common::*;

const X86_64_RECIPE: &str = "recipes/x86-64.toml";

/// The recipe's root file system, extracted from the build's root image into a folder.
fn extracted_root(recipe: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let ws = workspace();
    let out = carapace_image::build::build(&ws.join(recipe), &ws)
        .unwrap_or_else(|e| panic!("building {recipe} failed: {e}"));
    let slot = out.image.parent().unwrap().join("slot");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let extract = Command::new("fsck.erofs")
        .arg(format!("--extract={}", root.display()))
        .arg(slot.join("root.img"))
        .output()
        .expect("fsck.erofs (erofs-utils)");
    assert!(
        extract.status.success(),
        "fsck.erofs: {}",
        String::from_utf8_lossy(&extract.stderr)
    );
    (dir, root, out.image)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every module file below the root's /usr/lib/modules, by module name.
fn modules(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.join("usr/lib/modules")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap()) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Some(name) = entry.file_name().to_str() {
                if let Some(module) = name.split(".ko").next().filter(|_| name.contains(".ko")) {
                    found.push(module.replace('-', "_"));
                }
            }
        }
    }
    found
}

#[test]
fn the_mini_pc_image_carries_its_drivers_and_firmware_and_boots() {
    let (_dir, root, image) = extracted_root(X86_64_RECIPE);
    let modules = modules(&root);
    for module in [
        "iwlwifi", "iwlmvm", "i915", "e1000e", "igb", "igc", "r8169", "cfg80211",
    ] {
        assert!(
            modules.iter().any(|m| m == module),
            "module {module} is not in the root"
        );
    }

    let firmware = root.join("usr/lib/firmware");
    let top = names_in(&firmware);
    // The AX200/AX201 (cc-a0, QuZ), AX210/AX211 (ty-a0-gf-a0, so-a0-gf-a0) and BE200
    // (gl-c0-fm-c0) microcode, as iwlwifi asks for them by name.
    for chip in [
        "iwlwifi-cc-a0-",
        "iwlwifi-QuZ-a0-hr-b0-",
        "iwlwifi-ty-a0-gf-a0-",
        "iwlwifi-so-a0-gf-a0-",
        "iwlwifi-gl-c0-fm-c0-",
    ] {
        assert!(
            top.iter()
                .any(|n| n.starts_with(chip) && n.ends_with(".ucode")),
            "no {chip}*.ucode in /usr/lib/firmware: {top:?}"
        );
    }
    assert!(top.contains(&"regulatory.db".to_string()), "{top:?}");
    assert!(top.contains(&"regulatory.db.p7s".to_string()), "{top:?}");
    let i915 = names_in(&firmware.join("i915"));
    for blob in ["adlp_guc_", "adlp_dmc", "tgl_huc", "icl_dmc"] {
        assert!(
            i915.iter().any(|n| n.starts_with(blob)),
            "no i915/{blob}* (Alder Lake, Tiger Lake, Ice Lake iGPUs): {i915:?}"
        );
    }
    let realtek = names_in(&firmware.join("rtl_nic"));
    for blob in ["rtl8168h-2.fw", "rtl8125b-2.fw"] {
        assert!(realtek.contains(&blob.to_string()), "{realtek:?}");
    }

    // It boots as the default image does: the drivers load with no such hardware present.
    let (_vm_dir, config): (tempfile::TempDir, VmConfig) = machine_of(&image, "x86-64");
    let mut vm = boot_to_ready(&config);
    let loaded = line_with(&mut vm, "carapace: stage2 modules loaded=");
    let count: u32 = value(&loaded, "loaded").parse().unwrap();
    assert!(count > 40, "{loaded}");
    power_off(&mut vm);
}
