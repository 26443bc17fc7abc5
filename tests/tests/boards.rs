//! The images for real hardware, checked for what the hardware needs: recipes/x86-64.toml
//! (mini PCs) carries the drivers and firmware of their disks, NICs, Wi-Fi and iGPU in its
//! verified root, read back from the built root image itself, and it still boots (in QEMU,
//! with none of that hardware present); recipes/jetson-orin.toml is assembled from a BSP
//! directory, here a small fake one with NVIDIA's file layout; recipes/pi5.toml takes
//! Raspberry Pi's kernel and an AI HAT+'s driver, firmware and HailoRT from folders, here fakes
//! with Raspberry Pi OS's and Hailo's file names.

mod common;

use std::os::unix::fs::symlink;
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
    let (dir, root) = extract_root(&out.image);
    (dir, root, out.image)
}

/// The root file system of the build whose image is `image`, extracted into a folder.
fn extract_root(image: &Path) -> (tempfile::TempDir, PathBuf) {
    let slot = image.parent().unwrap().join("slot");
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
    (dir, root)
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
            } else if let Some((module, _)) =
                entry.file_name().to_str().and_then(|n| n.split_once(".ko"))
            {
                found.push(module.replace('-', "_"));
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

#[test]
fn the_mini_pc_image_ships_openvinos_onnx_runtime_when_the_engine_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(workspace().join(X86_64_RECIPE)).unwrap();
    let serve =
        "\"/usr/bin/carapace-infer\", \"--models\", \"/usr/share/carapace/models\", \"serve\",";
    assert!(text.contains(serve), "the engine's exec moved");
    let text = text
        .replace("name = \"x86-64\"", "name = \"x86-64-openvino\"")
        .replace(serve, &format!("{serve} \"--onnx-runtime\", \"openvino\","))
        .replace(
            "\"libstdc++6\", \"libgcc-s1\",",
            "\"libstdc++6\", \"libgcc-s1\", \"ocl-icd-libopencl1\", \"zlib1g\",",
        );
    let recipe = write_variant(dir.path(), "x86-64", "x86-64-openvino", &text);
    let ws = workspace();
    let out = carapace_image::build::build(&recipe, &ws)
        .unwrap_or_else(|e| panic!("building x86-64.toml with OpenVINO: {e}"));
    let (_root_dir, root) = extract_root(&out.image);
    let models = root.join("usr/share/carapace/models");
    let runtimes: Vec<String> = names_in(&models)
        .into_iter()
        .filter(|n| n.starts_with("onnxruntime"))
        .collect();
    assert_eq!(
        runtimes,
        ["onnxruntime-openvino-x86_64-1.24.1"],
        "the image ships the runtime the engine asks for, and only that one"
    );
    let runtime = names_in(&models.join(&runtimes[0]));
    for library in [
        "libonnxruntime.so.1.24.1",
        "libonnxruntime_providers_openvino.so",
        "libopenvino_intel_cpu_plugin.so",
        "libopenvino_intel_gpu_plugin.so",
        "libtbb.so.12",
    ] {
        assert!(
            runtime.iter().any(|n| n == library),
            "{library}: {runtime:?}"
        );
    }
    // The runtime's folder holds the runtime (its $ORIGIN run path finds its own libraries
    // there), never a copy of a Debian library: those are in the loader's folders, once.
    let pinned = carapace_models::ModelLock::pinned()
        .unwrap()
        .model(runtimes[0].trim_end_matches("-1.24.1"))
        .unwrap()
        .installed_files();
    assert_eq!(runtime.len(), pinned.len(), "{runtime:?}");
    // What OpenVINO's GPU plugin and ONNX Runtime link, from Debian.
    let libraries = names_in(&root.join("usr/lib/x86_64-linux-gnu"));
    for library in ["libOpenCL.so.1", "libz.so.1"] {
        assert!(
            libraries.iter().any(|n| n == library),
            "{library}: {libraries:?}"
        );
    }
}

const FIXTURE_KERNEL: &str = "5.15.148-tegra";
const FIXTURE_IMAGE: &[u8] = b"fake arm64 Image of the BSP fixture";

#[test]
fn the_jetson_image_is_assembled_from_the_bsp_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bsp = dir.path().join("bsp");
    let nvgpu = fake_bsp(&bsp, "R36", "4.3");
    let recipe = jetson_variant(dir.path(), &bsp, "R36.4.3");
    let ws = workspace();
    let out = carapace_image::build::build(&recipe, &ws)
        .unwrap_or_else(|e| panic!("building the Jetson recipe from the fake BSP: {e}"));
    let slot = out.image.parent().unwrap().join("slot");

    // The slot's kernel is the BSP's Image; the command line is the Orin's console and does
    // not ask for module signatures NVIDIA's modules do not carry.
    assert_eq!(std::fs::read(slot.join("vmlinuz")).unwrap(), FIXTURE_IMAGE);
    let slot_json = std::fs::read_to_string(slot.join("slot.json")).unwrap();
    let cmdline = slot_json
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"kernel_cmdline\": "))
        .unwrap_or_else(|| panic!("no kernel_cmdline in {slot_json}"));
    assert!(cmdline.contains("console=ttyTCU0,115200"), "{cmdline}");
    assert!(cmdline.contains("lockdown=integrity"), "{cmdline}");
    assert!(!cmdline.contains("module.sig_enforce"), "{cmdline}");

    let (_root_dir, root) = extract_root(&out.image);
    let modules = root.join("usr/lib/modules").join(FIXTURE_KERNEL);
    assert_eq!(
        std::fs::read(modules.join("updates/drivers/gpu/nvgpu/nvgpu.ko")).unwrap(),
        nvgpu,
        "the BSP's out-of-tree nvgpu module is not in the root as shipped"
    );
    let nvidia = root.join("usr/lib/aarch64-linux-gnu/nvidia");
    assert_eq!(
        std::fs::read(nvidia.join("libcuda.so.1.1")).unwrap(),
        b"libcuda of the fixture"
    );
    assert_eq!(
        std::fs::read_link(nvidia.join("libcuda.so.1")).unwrap(),
        Path::new("libcuda.so.1.1")
    );
    assert!(nvidia.join("libnvrm_gpu.so").is_file());
    // The firmware package ships it under /lib: the root keeps it at /usr/lib.
    assert!(
        root.join("usr/lib/firmware/ga10b/acr-gsp.bin").is_file(),
        "the GPU firmware is missing"
    );

    // The SBOM names the BSP release and file each of its parts came from.
    let sbom = std::fs::read_to_string(out.sbom).unwrap();
    let vmlinuz = sbom
        .split("\"path\": ")
        .find(|entry| entry.starts_with("\"esp:/a/vmlinuz\""))
        .unwrap_or_else(|| panic!("no esp:/a/vmlinuz in the SBOM"));
    assert!(
        vmlinuz.contains("\"release\": \"R36.4.3\"")
            && vmlinuz.contains("\"file\": \"kernel/Image\""),
        "{vmlinuz}"
    );

    // Another release than the recipe's is refused, naming both.
    let older = dir.path().join("older");
    fake_bsp(&older, "R36", "3.0");
    let recipe = jetson_variant(dir.path(), &older, "R36.4.3");
    let Err(e) = carapace_image::build::build(&recipe, &ws) else {
        panic!("a BSP of another release was taken");
    };
    assert!(
        e.to_string()
            .contains("this is R36.3.0, but the recipe's [bsp] release is R36.4.3"),
        "{e}"
    );
}

const RPI_KERNEL: &str = "6.12.47+rpt-rpi-2712";
const RPI_IMAGE: &[u8] = b"fake Raspberry Pi kernel_2712 Image";
const HAILORT: &str = "4.23.0";

#[test]
fn the_pi5_image_takes_raspberry_pis_kernel_and_the_ai_hat_from_their_folders() {
    let dir = tempfile::tempdir().unwrap();
    let kernel_dir = dir.path().join("rpi-kernel");
    fake_rpi_kernel(&kernel_dir, HAILORT);
    let hailo_dir = dir.path().join("hailo");
    let firmware = fake_hailo(&hailo_dir, HAILORT);
    let recipe = pi5_variant(dir.path(), &kernel_dir, &hailo_dir, HAILORT);
    let ws = workspace();
    let out = carapace_image::build::build(&recipe, &ws)
        .unwrap_or_else(|e| panic!("building the Pi 5 recipe with the fixtures: {e}"));

    // Slot A's boot partition: Raspberry Pi's kernel, its device trees and every overlay (the
    // firmware applies bcm2712d0 on D0 boards itself); no signature enforcement for modules
    // Debian did not sign.
    let disk = std::fs::File::open(&out.image).unwrap();
    let length = disk.metadata().unwrap().len();
    let fs = carapace_image::fat_partition::open(&disk, length, 2).unwrap();
    let read = |name: &str| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut fs
                .root_dir()
                .open_file(name)
                .unwrap_or_else(|e| panic!("boot-a has no {name}: {e}")),
            &mut bytes,
        )
        .unwrap();
        bytes
    };
    assert_eq!(read("vmlinuz"), RPI_IMAGE);
    assert_eq!(read("bcm2712-rpi-5-b.dtb"), b"C0 device tree");
    assert_eq!(read("bcm2712-rpi-cm5-cm5io.dtb"), b"CM5 device tree");
    assert_eq!(read("overlays/overlay_map.dtb"), b"overlay map");
    assert_eq!(read("overlays/bcm2712d0.dtbo"), b"D0 overlay");
    let cmdline = String::from_utf8(read("cmdline.txt")).unwrap();
    assert!(cmdline.contains("lockdown=integrity"), "{cmdline}");
    assert!(!cmdline.contains("module.sig_enforce"), "{cmdline}");
    drop(fs);

    // The root: HailoRT, its firmware under the name the driver asks for, and the driver.
    let (_root_dir, root) = extract_root(&out.image);
    assert!(
        root.join(format!("usr/lib/libhailort.so.{HAILORT}"))
            .is_file()
    );
    assert_eq!(
        std::fs::read(root.join("usr/lib/firmware/hailo/hailo8_fw.bin")).unwrap(),
        firmware
    );
    assert!(
        modules(&root).iter().any(|m| m == "hailo_pci"),
        "the driver is not in the root"
    );
    let sbom = std::fs::read_to_string(&out.sbom).unwrap();
    let vmlinuz = sbom
        .split("\"path\": ")
        .find(|entry| entry.starts_with("\"boot-a:/vmlinuz\""))
        .unwrap_or_else(|| panic!("no boot-a:/vmlinuz in the SBOM"));
    assert!(
        vmlinuz.contains(&format!(
            "\"file\": \"linux-image-{RPI_KERNEL}_1_arm64.deb\""
        )),
        "{vmlinuz}"
    );

    // HailoRT and firmware of another release than the kernel's driver: refused, saying why.
    let older = dir.path().join("hailo-older");
    fake_hailo(&older, "4.20.0");
    let recipe = pi5_variant(dir.path(), &kernel_dir, &older, "4.20.0");
    let Err(e) = carapace_image::build::build(&recipe, &ws) else {
        panic!("a HailoRT of another version than the driver was taken");
    };
    assert!(
        e.to_string().contains(
            "the driver hailo_pci is version \"4.23.0\" but HailoRT and the firmware are 4.20.0"
        ),
        "{e}"
    );
}

/// recipes/pi5.toml with Raspberry Pi's kernel from `kernel` and an AI HAT+ from `hailo`.
fn pi5_variant(dir: &Path, kernel: &Path, hailo: &Path, version: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("recipes/pi5.toml")).unwrap();
    let text = text.replace("name = \"pi5\"", "name = \"pi5-fixture\"")
        + &format!(
            "\n[pi_kernel]\ndir = \"{}\"\nrelease = \"{RPI_KERNEL}\"\n\n[hailo]\ndir = \"{}\"\n\
             device = \"hailo8\"\nversion = \"{version}\"\n",
            kernel.display(),
            hailo.display()
        );
    write_variant(dir, "pi5", "pi5-fixture", &text)
}

/// Raspberry Pi OS's kernel package layout: boot/vmlinuz-<release>, the modules (every one the
/// board and recipe need built in, except the Hailo driver, whose modinfo says `version`), and
/// the device trees and overlays under usr/lib/linux-image-<release>/.
fn fake_rpi_kernel(dir: &Path, hailo_version: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let name = format!("linux-image-{RPI_KERNEL}");
    let ws = workspace();
    let (recipe, _) = carapace_image::recipe::Recipe::load(&ws.join("recipes/pi5.toml")).unwrap();
    let builtin: String = board_support::board::PI5
        .initramfs_modules
        .iter()
        .map(|m| m.to_string())
        .chain(recipe.kernel.root_modules)
        .map(|m| format!("kernel/drivers/fixture/{m}.ko\n"))
        .collect();
    fake_deb_versioned(dir, &name, "1", |tree| {
        std::fs::create_dir_all(tree.join("boot")).unwrap();
        std::fs::write(tree.join(format!("boot/vmlinuz-{RPI_KERNEL}")), RPI_IMAGE).unwrap();
        let modules = tree.join("usr/lib/modules").join(RPI_KERNEL);
        let hailo = modules.join("kernel/drivers/media/pci/hailo");
        std::fs::create_dir_all(&hailo).unwrap();
        std::fs::write(modules.join("modules.builtin"), &builtin).unwrap();
        std::fs::write(
            hailo.join("hailo_pci.ko"),
            elf_module(&format!(
                "version={hailo_version}\0license=GPL\0depends=\0name=hailo_pci\0\
                 vermagic={RPI_KERNEL} SMP preempt mod_unload modversions aarch64\0"
            )),
        )
        .unwrap();
        let dtbs = tree.join(format!("usr/lib/linux-image-{RPI_KERNEL}"));
        std::fs::create_dir_all(dtbs.join("broadcom")).unwrap();
        std::fs::create_dir_all(dtbs.join("overlays")).unwrap();
        for (file, bytes) in [
            ("broadcom/bcm2712-rpi-5-b.dtb", &b"C0 device tree"[..]),
            ("broadcom/bcm2712-rpi-cm5-cm5io.dtb", b"CM5 device tree"),
            ("broadcom/bcm2711-rpi-4-b.dtb", b"a Pi 4's"),
            ("overlays/overlay_map.dtb", b"overlay map"),
            ("overlays/bcm2712d0.dtbo", b"D0 overlay"),
        ] {
            std::fs::write(dtbs.join(file), bytes).unwrap();
        }
    });
    // A package of another kernel in the same folder is left alone.
    fake_deb_versioned(dir, "linux-image-6.6.74+rpt-rpi-v8", "1", |tree| {
        std::fs::create_dir_all(tree.join("boot")).unwrap();
        std::fs::write(tree.join("boot/vmlinuz-6.6.74+rpt-rpi-v8"), b"another").unwrap();
    });
}

/// HailoRT (an aarch64 shared library built here) and the Hailo-8 firmware of `version`.
/// Returns the firmware's bytes.
fn fake_hailo(dir: &Path, version: &str) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let source = dir.join("hailort.c");
    std::fs::write(
        &source,
        "int hailo_get_library_version(void) { return 0; }\n",
    )
    .unwrap();
    run(Command::new("aarch64-linux-gnu-gcc")
        .args(["-shared", "-nostdlib", "-fPIC", "-o"])
        .arg(dir.join(format!("libhailort.so.{version}")))
        .arg(&source));
    std::fs::remove_file(source).unwrap();
    let firmware = format!("Hailo-8 firmware {version}").into_bytes();
    std::fs::write(dir.join(format!("hailo8_fw.{version}.bin")), &firmware).unwrap();
    firmware
}

/// recipes/jetson-orin.toml with its BSP at `bsp`, its lock and files beside it in `dir`.
fn jetson_variant(dir: &Path, bsp: &Path, release: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("recipes/jetson-orin.toml")).unwrap();
    let text = text
        .replace("name = \"jetson-orin\"", "name = \"jetson-orin-fixture\"")
        .replace(
            "dir = \"../bsp/R36.4.3\"",
            &format!("dir = \"{}\"", bsp.display()),
        )
        .replace("release = \"R36.4.3\"", &format!("release = \"{release}\""));
    assert!(
        text.contains(&bsp.display().to_string()),
        "the recipe's [bsp] dir moved"
    );
    write_variant(dir, "jetson-orin", "jetson-orin-fixture", &text)
}

/// A BSP with Linux_for_Tegra's layout: nv_tegra_release, kernel/Image, the modules tarball
/// (every module the board and recipe need built in, except nvgpu under updates/) and the
/// three packages. Returns nvgpu.ko's bytes.
fn fake_bsp(at: &Path, major: &str, revision: &str) -> Vec<u8> {
    let l4t = at.join("Linux_for_Tegra");
    let nv_tegra = l4t.join("nv_tegra");
    std::fs::create_dir_all(nv_tegra.join("l4t_deb_packages")).unwrap();
    std::fs::write(
        nv_tegra.join("nv_tegra_release"),
        format!(
            "# {major} (release), REVISION: {revision}, GCID: 38968081, BOARD: generic, EABI: \
             aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n"
        ),
    )
    .unwrap();
    let kernel = l4t.join("kernel");
    std::fs::create_dir_all(&kernel).unwrap();
    std::fs::write(kernel.join("Image"), FIXTURE_IMAGE).unwrap();

    let staging = at.join("supplements");
    let modules = staging.join("lib/modules").join(FIXTURE_KERNEL);
    std::fs::create_dir_all(modules.join("kernel")).unwrap();
    let builtin = [
        "drivers/nvme/host/nvme",
        "drivers/mmc/host/sdhci-tegra",
        "drivers/mmc/core/mmc_block",
        "drivers/usb/host/xhci-tegra",
        "drivers/usb/storage/usb-storage",
        "drivers/usb/storage/uas",
        "drivers/md/dm-verity",
        "fs/erofs/erofs",
        "fs/ext4/ext4",
        "fs/fat/vfat",
        "fs/nls/nls_cp437",
        "fs/nls/nls_ascii",
        "fs/nls/nls_utf8",
        "net/netfilter/nfnetlink",
        "net/netfilter/nf_tables",
        "net/netfilter/nf_conntrack",
        "net/netfilter/nft_ct",
        "net/wireless/cfg80211",
    ]
    .map(|m| format!("kernel/{m}.ko\n"))
    .concat();
    std::fs::write(modules.join("modules.builtin"), builtin).unwrap();
    let nvgpu = elf_module("license=GPL\0depends=\0name=nvgpu\0");
    let nvgpu_dir = modules.join("updates/drivers/gpu/nvgpu");
    std::fs::create_dir_all(&nvgpu_dir).unwrap();
    std::fs::write(nvgpu_dir.join("nvgpu.ko"), &nvgpu).unwrap();
    run(Command::new("tar")
        .arg("-cjf")
        .arg(kernel.join("kernel_supplements.tbz2"))
        .arg("-C")
        .arg(&staging)
        .arg("lib"));

    let debs = nv_tegra.join("l4t_deb_packages");
    let lib = "usr/lib/aarch64-linux-gnu/nvidia";
    fake_deb(&debs, "nvidia-l4t-core", |tree| {
        std::fs::create_dir_all(tree.join(lib)).unwrap();
        std::fs::write(tree.join(lib).join("libnvrm_gpu.so"), b"nvrm").unwrap();
    });
    fake_deb(&debs, "nvidia-l4t-cuda", |tree| {
        std::fs::create_dir_all(tree.join(lib)).unwrap();
        std::fs::write(
            tree.join(lib).join("libcuda.so.1.1"),
            b"libcuda of the fixture",
        )
        .unwrap();
        symlink("libcuda.so.1.1", tree.join(lib).join("libcuda.so.1")).unwrap();
    });
    fake_deb(&debs, "nvidia-l4t-firmware", |tree| {
        std::fs::create_dir_all(tree.join("lib/firmware/ga10b")).unwrap();
        std::fs::write(tree.join("lib/firmware/ga10b/acr-gsp.bin"), b"gsp").unwrap();
    });
    nvgpu
}

/// dpkg-deb builds `<name>_36.4.3-20250107174145_arm64.deb` in `dir` from what `fill` puts in
/// its tree.
fn fake_deb(dir: &Path, name: &str, fill: impl FnOnce(&Path)) {
    fake_deb_versioned(dir, name, "36.4.3-20250107174145", fill)
}

/// dpkg-deb builds `<name>_<version>_arm64.deb` in `dir` from what `fill` puts in its tree.
fn fake_deb_versioned(dir: &Path, name: &str, version: &str, fill: impl FnOnce(&Path)) {
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("DEBIAN")).unwrap();
    std::fs::write(
        tree.path().join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: arm64\n\
             Maintainer: fixture <fixture@example.org>\nDescription: board fixture\n"
        ),
    )
    .unwrap();
    fill(tree.path());
    run(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zxz"])
        .arg(tree.path())
        .arg(dir.join(format!("{name}_{version}_arm64.deb"))));
}

fn run(command: &mut Command) {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A relocatable arm64 ELF with only a .modinfo section: what the builder reads of a module.
fn elf_module(modinfo: &str) -> Vec<u8> {
    let shstrtab = b"\0.modinfo\0.shstrtab\0";
    let info_at = 64u64;
    let names_at = info_at + modinfo.len() as u64;
    let headers_at = (names_at + shstrtab.len() as u64).next_multiple_of(8);
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    elf.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // entry
    elf.extend_from_slice(&0u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&headers_at.to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 0, 0, 64, 3, 2] {
        // header size, program header size and count, section header size and count, names
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(modinfo.as_bytes());
    elf.extend_from_slice(shstrtab);
    elf.resize(headers_at as usize, 0);
    let section = |elf: &mut Vec<u8>, name: u32, kind: u32, offset: u64, size: u64| {
        elf.extend_from_slice(&name.to_le_bytes());
        elf.extend_from_slice(&kind.to_le_bytes());
        for value in [0u64, 0, offset, size] {
            elf.extend_from_slice(&value.to_le_bytes());
        }
        elf.extend_from_slice(&0u32.to_le_bytes());
        elf.extend_from_slice(&0u32.to_le_bytes());
        elf.extend_from_slice(&1u64.to_le_bytes());
        elf.extend_from_slice(&0u64.to_le_bytes());
    };
    section(&mut elf, 0, 0, 0, 0);
    section(&mut elf, 1, 1, info_at, modinfo.len() as u64); // .modinfo, PROGBITS
    section(&mut elf, 10, 3, names_at, shstrtab.len() as u64); // .shstrtab, STRTAB
    elf
}
