//! The baseline the bench compares Carapace with: a minimal Debian + systemd image, built from
//! Debian's packages and booted by the same QEMU, firmware, systemd-boot and kernel as the
//! Carapace image of the recipe, measured to multi-user.target.
//!
//! The kernel, its modules and systemd-boot are the very files Carapace's build used (the
//! recipe's pinned packages, from the build cache). The root carries the same kernel modules
//! Carapace ships plus what the baseline itself needs, not the kernel package's hundreds of
//! others: the sizes then compare userland with userland.

use std::path::{Path, PathBuf};

use board_support::board::BootFlow;
use carapace_image::build::Paths;
use carapace_image::esp::{EspFile, build_esp};
use carapace_image::kmod::KernelTree;
use carapace_image::recipe::Recipe;
use carapace_image::{board, packages};

use super::error::{Context, Result, fail};
use super::{baseline_disk, busybox_initramfs, debian_root, size};

pub struct Baseline {
    pub image: PathBuf,
    pub image_zst: PathBuf,
    pub description: String,
}

/// Kernel command line: the serial console like Carapace's, the root the initramfs mounts.
const CMDLINE: &str = "console=ttyS0,115200 quiet root=/dev/vda2 rootfstype=ext4 rw";

pub fn build(workspace: &Path, recipe_path: &Path, out: &Path) -> Result<Baseline> {
    let (recipe, _) = Recipe::load(recipe_path).context(|| "read the recipe".into())?;
    let board = board::find(&recipe.board).context(|| "find the recipe's board".into())?;
    let cache = Paths::for_recipe(workspace, &recipe).cache;
    let debs = packages::fetch(
        recipe_path,
        &recipe,
        board,
        &cache,
        packages::LockPolicy::Update,
    )
    .context(|| {
        format!(
            "fetch the Debian packages pinned for {}",
            recipe_path.display()
        )
    })?;
    let kernel_package = debs.named_prefix("linux-image-").ok_or_else(|| {
        fail(format!(
            "{} pins no linux-image package",
            recipe_path.display()
        ))
    })?;
    let kernel =
        KernelTree::open(&kernel_package.root).context(|| "open the kernel package".into())?;
    // The baseline boots the way Carapace's image does: only the UEFI flow is built today.
    let BootFlow::UefiSystemdBoot(loader) = &board.boot_flow else {
        return Err(fail(format!("{} has no UEFI boot loader", board.name)));
    };
    let (efi, _) = debs.find(loader.efi_file).ok_or_else(|| {
        fail(format!(
            "{} is not in the pinned {}",
            loader.efi_file, loader.package
        ))
    })?;

    let initramfs_modules: Vec<String> = busybox_initramfs::MODULES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let boot_modules = kernel
        .closure(&initramfs_modules)
        .context(|| "collect the initramfs modules".into())?;
    // In the root: what the initramfs loaded, what Carapace's root carries (watchdog, power
    // button, input events, the ESP's vfat), and autofs4, which systemd asks for at start.
    let mut root_module_names = initramfs_modules.clone();
    root_module_names.extend(recipe.kernel.root_modules.iter().cloned());
    root_module_names.push("autofs4".into());
    let root_modules = kernel
        .closure(&root_module_names)
        .context(|| "collect the root's modules".into())?;

    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).context(|| format!("create {}", work.display()))?;

    let bootstrapped = debian_root::bootstrapped(&cache)?;
    let staged = work.join("rootfs");
    eprintln!(
        "bench: setting up the baseline root in {}",
        staged.display()
    );
    debian_root::stage(
        &bootstrapped,
        &staged,
        &kernel_package.root,
        &kernel.release,
        &root_modules,
    )?;
    let root_ext4 = work.join("root.ext4");
    let root_size = debian_root::make_ext4(&staged, &root_ext4)?;

    let busybox_path = busybox_initramfs::busybox(&cache)?;
    let busybox =
        std::fs::read(&busybox_path).context(|| format!("read {}", busybox_path.display()))?;
    let initrd = busybox_initramfs::build(&busybox, &kernel.release, &boot_modules)?;

    let read = |p: &Path| std::fs::read(p).context(|| format!("read {}", p.display()));
    let loader_conf = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\ndefault debian.conf\n";
    let entry = format!(
        "title Debian {} (Carapace bench baseline)\nlinux /debian/vmlinuz\ninitrd /debian/initrd\noptions {CMDLINE}\n",
        debian_root::SUITE
    );
    let esp_files = vec![
        EspFile {
            path: board.architecture.uefi_removable_loader_path().into(),
            data: read(&efi)?,
        },
        EspFile {
            path: "loader/loader.conf".into(),
            data: loader_conf.into(),
        },
        EspFile {
            path: "loader/entries/debian.conf".into(),
            data: entry.into_bytes(),
        },
        EspFile {
            path: "debian/vmlinuz".into(),
            data: read(&kernel.vmlinuz)?,
        },
        EspFile {
            path: "debian/initrd".into(),
            data: initrd,
        },
    ];
    let esp_mib = recipe.disk.esp_mib.unwrap_or(board.default_esp_mib);
    let esp = build_esp(esp_mib << 20, 0x6465_6269, &esp_files)
        .context(|| "build the baseline's ESP".into())?;

    let image = out.join("baseline.img");
    let image_zst = out.join("baseline.img.zst");
    baseline_disk::write(&image, &esp, &root_ext4)?;
    size::compress_zstd(&image, &image_zst)?;
    let _ = std::fs::remove_dir_all(&work);

    eprintln!(
        "bench: built {} (ESP {esp_mib} MiB, ext4 root {} MiB)",
        image.display(),
        root_size >> 20
    );
    Ok(Baseline {
        image,
        image_zst,
        description: debian_root::description(),
    })
}
