//! `carapace build`: recipe → Debian packages + our static binaries → root (erofs + verity),
//! initramfs, ESP → GPT disk image, its .zst and sbom.json. Same inputs, same bytes.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use board_support::board::{BootFlow, KernelSource};
use board_support::boot_control::{KEXEC_PROGRAM, PiTrialStart};
use board_support::boot_entry::ESP_MOUNT_POINT;
use board_support::cmdline::{BootParams, VerityParams};
use board_support::{IMAGE_INFO_PATH, ImageInfo, SERVICE_TABLE_PATH, Slot};

use crate::board::{self, Board};
use crate::boot_partitions::{self, SlotABoot};
use crate::bsp::{self, Bsp};
use crate::cache_lock::CacheLock;
use crate::cargo_build::{self, BinarySpec, git_revision};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{rename_durably, sha256_hex, write_atomic};
use crate::gpt_writer::{GptIds, write_gpt};
use crate::hailo;
use crate::ids::{derived_bytes, derived_uuid};
use crate::kmod::{KernelTree, modules_dep};
use crate::layout::{DATA_NAME, DiskPlan, ROOT_A_NAME, ROOT_B_NAME};
use crate::models;
use crate::packages::{LockPolicy, Resolved, UpdateRequest};
use crate::pi_kernel::PiKernel;
use crate::recipe::{Linkage, Recipe};
use crate::rootfs::{Content, Origin, RootTree, make_erofs};
use crate::sbom::{Sbom, SbomFile};
use crate::secure_boot::{self, SecureBootKeys};
use crate::slot_files::{self, SlotInfo, UpdateTrust};
use crate::{accounts, build_inputs, elf_deps, initramfs, network, package_data, packages, verity};

pub struct BuildOutput {
    pub image: PathBuf,
    pub image_zst: PathBuf,
    pub sbom: PathBuf,
}

pub struct Paths {
    pub workspace: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
}

impl Paths {
    pub fn for_recipe(workspace: &Path, recipe: &Recipe) -> Paths {
        Paths {
            workspace: workspace.into(),
            out: workspace.join("out").join(&recipe.name),
            cache: default_cache(workspace),
        }
    }

    /// The three outputs of a build; they appear together: sbom.json is renamed into place
    /// last, so an image without it is a build that did not finish.
    pub fn outputs(&self) -> BuildOutput {
        BuildOutput {
            image: self.out.join("carapace.img"),
            image_zst: self.out.join("carapace.img.zst"),
            sbom: self.out.join("sbom.json"),
        }
    }
}

/// The build cache, shared by every checkout on the machine: CARAPACE_CACHE, else
/// $XDG_CACHE_HOME/carapace, else ~/.cache/carapace.
pub fn default_cache(workspace: &Path) -> PathBuf {
    board_support::cache_dir::cache_dir().unwrap_or_else(|| workspace.join(".cache/carapace"))
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Refuse to move a pin the archive dropped (`carapace build --locked`).
    pub locked: bool,
    /// Sign for Secure Boot with the keys in this folder (`carapace keygen --secure-boot`):
    /// each slot boots a signed unified kernel image (secure_boot.rs).
    pub secure_boot_keys: Option<PathBuf>,
}

impl BuildOptions {
    pub fn lock_policy(&self) -> LockPolicy {
        if self.locked {
            LockPolicy::Locked
        } else {
            LockPolicy::Update
        }
    }
}

/// Timestamps inside the image: SOURCE_DATE_EPOCH when set, else a fixed date.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_767_225_600)
}

/// A build with the default options: pins the archive dropped move on, as `cargo build` does.
pub fn build(recipe_path: &Path, workspace: &Path) -> Result<BuildOutput> {
    build_with(recipe_path, workspace, BuildOptions::default())
}

pub fn build_with(
    recipe_path: &Path,
    workspace: &Path,
    options: BuildOptions,
) -> Result<BuildOutput> {
    let started = std::time::Instant::now();
    let (recipe, recipe_text) = Recipe::load(recipe_path)?;
    let board = board::find(&recipe.board)?;
    let secure_boot = match &options.secure_boot_keys {
        Some(dir) => Some(secure_boot_for(board, dir)?),
        None => None,
    };
    // Only UEFI boards get a firmware variable store with the keys enrolled.
    let enrolls_keys = secure_boot.is_some() && !matches!(board.boot_flow, BootFlow::PiTryboot(_));
    if secure_boot.is_some() {
        refuse_signed_pi_updates(board, recipe_path, &recipe)?;
    }
    let bsp = match (board.kernel, &recipe.bsp) {
        (KernelSource::VendorBsp, Some(section)) => Some(Bsp::open(section)?),
        (KernelSource::Debian { .. }, None) => None,
        (KernelSource::VendorBsp, None) => {
            return Err(Error::RecipeInvalid {
                path: recipe_path.to_path_buf(),
                message: format!(
                    "board {} takes its kernel from the vendor's BSP: add [bsp] with dir (the \
                     folder holding Linux_for_Tegra) and release (\"R36.4.3\")",
                    board.name
                ),
            });
        }
        (KernelSource::Debian { .. }, Some(_)) => {
            return Err(Error::RecipeInvalid {
                path: recipe_path.to_path_buf(),
                message: format!(
                    "board {} runs Debian's kernel: [bsp] is for a board whose kernel the \
                     vendor's BSP brings (jetson-orin)",
                    board.name
                ),
            });
        }
    };
    let disk = DiskPlan::new(
        board,
        recipe.disk.esp_mib.unwrap_or(board.default_esp_mib),
        recipe.disk.root_mib.unwrap_or(board.default_root_mib),
        recipe.disk.data_mib.unwrap_or(board.default_data_mib),
    )?;
    let paths = Paths::for_recipe(workspace, &recipe);
    // One build of this recipe at a time (a second one then finds it up to date); builds of
    // other recipes go on beside it and take the shared cache only to fetch into it, not for
    // their compiles (the test lanes build the engine and the static binaries at once).
    let _recipe_lock = CacheLock::acquire(&paths.out)?;
    let outputs = paths.outputs();
    // Raspberry Pi's kernel and the AI HAT+ exist only for a Pi.
    let pi_only = [
        (
            "[pi_kernel] (Raspberry Pi's kernel)",
            recipe.pi_kernel.is_some(),
        ),
        (
            "[hailo] (a Raspberry Pi 5's AI HAT+)",
            recipe.hailo.is_some(),
        ),
    ];
    for (section, _) in pi_only.iter().filter(|(_, set)| *set) {
        if !matches!(board.boot_flow, BootFlow::PiTryboot(_)) {
            return Err(Error::RecipeInvalid {
                path: recipe_path.to_path_buf(),
                message: format!("{section} is for board pi5, not board {}", board.name),
            });
        }
    }
    // A BSP, Raspberry Pi's kernel or Hailo's files live outside the workspace, where the
    // digest does not look: build every time.
    let outside = bsp.is_some() || recipe.pi_kernel.is_some() || recipe.hailo.is_some();
    let inputs = if outside {
        None
    } else {
        build_inputs::digest(workspace, recipe_path, &options)
    };
    let enrolled_vars = paths.out.join(secure_boot::ENROLLED_VARS);
    if let Some(digest) = &inputs
        && build_inputs::unchanged(&paths.out, digest)
        && [&outputs.image, &outputs.image_zst, &outputs.sbom]
            .iter()
            .all(|p| p.exists())
        && (!enrolls_keys || enrolled_vars.exists())
        && slot_files::SlotFiles::read(&paths.out)?.is_some()
    {
        eprintln!(
            "carapace: {} is up to date: nothing it is built from changed since (delete {} to \
             build it again)",
            outputs.image.display(),
            build_inputs::stamp_path(&paths.out).display()
        );
        return Ok(outputs);
    }
    // Whatever was there is gone before anything new is written: a failed build leaves no
    // image that does not match the recipe.
    let stamp = build_inputs::stamp_path(&paths.out);
    for old in [
        &stamp,
        &outputs.sbom,
        &outputs.image,
        &outputs.image_zst,
        &enrolled_vars,
    ] {
        remove_if_present(old)?;
    }
    slot_files::remove(&paths.out)?;
    let epoch = source_date_epoch();
    let work = paths.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).context(|| format!("create {}", work.display()))?;

    let debs = {
        let _cache_lock = CacheLock::acquire(&paths.cache)?;
        packages::fetch(
            recipe_path,
            &recipe,
            board,
            &paths.cache,
            options.lock_policy(),
        )?
    };
    let lock_text = toml::to_string(&debs.lock).unwrap_or_default();
    let bsp_packages = recipe
        .bsp
        .as_ref()
        .map(|b| b.packages.clone())
        .unwrap_or_default();
    let pi_kernel = match &recipe.pi_kernel {
        Some(section) => Some(PiKernel::open(section, &work)?),
        None => None,
    };
    let bsp_text = match (&bsp, &pi_kernel) {
        (Some(bsp), _) => bsp.identity(&bsp_packages)?,
        (None, Some(pi_kernel)) => pi_kernel.identity(),
        (None, None) => String::new(),
    };
    let hailo_text = match &recipe.hailo {
        Some(section) if section.path.is_dir() => hailo::folder_identity(&section.path)?,
        _ => String::new(),
    };
    let build_id =
        sha256_hex(format!("{recipe_text}\n{lock_text}{bsp_text}{hailo_text}").as_bytes())[..16]
            .to_string();

    let specs = binary_specs(&recipe);
    let binaries = cargo_build::build(workspace, board.architecture, &specs)?;
    let revision = git_revision(workspace);
    let crate_origin = |name: &str| Origin::Crate {
        name: name.into(),
        git_revision: revision.clone(),
    };

    // Kernel and modules: Debian's package (or its parts), or the vendor's BSP laid out the
    // same way.
    let kernel_parts = board
        .kernel
        .debian()
        .map(|debian| debs.kernel_packages(&debian))
        .unwrap_or_default();
    // The package a kernel file came from, for the SBOM.
    let origin_in_kernel = |path: &Path| match &pi_kernel {
        Some(pi_kernel) => pi_kernel.origin_of(path),
        None => kernel_parts
            .iter()
            .find(|p| path.starts_with(&p.root))
            .map(|p| p.origin()),
    };
    let (mut kernel, kernel_origin, vmlinuz_origin) = match (&bsp, &pi_kernel) {
        (Some(bsp), _) => (
            KernelTree::open(&bsp.kernel_tree(&work)?)?,
            bsp.origin(bsp::KERNEL_SUPPLEMENTS),
            bsp.origin(bsp::KERNEL_IMAGE),
        ),
        (None, pi_kernel) => {
            let tree = match pi_kernel {
                Some(pi_kernel) => pi_kernel.tree()?,
                None => {
                    let roots: Vec<&Path> = kernel_parts.iter().map(|p| p.root.as_path()).collect();
                    if roots.is_empty() {
                        return Err(Error::Package("the lock has no linux-image package".into()));
                    }
                    KernelTree::open_parts(&roots)?
                }
            };
            let unknown = || generated_by(&recipe.name);
            let modules = origin_in_kernel(tree.modules_dir()).unwrap_or_else(unknown);
            let vmlinuz = origin_in_kernel(&tree.vmlinuz).unwrap_or_else(unknown);
            (tree, modules, vmlinuz)
        }
    };
    let boot_modules: Vec<String> = board
        .initramfs_modules
        .iter()
        .map(|s| s.to_string())
        .collect();
    let boot_modules = kernel.closure(&boot_modules)?;
    let pi_trial_start = pi_trial_start(board, recipe_path, &recipe)?;
    let lockdown_words = match (&pi_kernel, pi_trial_start) {
        // Raspberry Pi's modules carry no signature this kernel checks.
        (Some(_), _) => KernelSource::VendorBsp.lockdown_words(),
        // Lockdown refuses kexec_load, which starts a Pi's trial under Debian's kernel
        // (docs/boot-contract.md, "Without the tryboot notifier").
        (None, Some(PiTrialStart::Kexec)) if recipe.services.iter().any(|s| s.boot_control) => {
            "module.sig_enforce=1"
        }
        (None, _) => board.kernel.lockdown_words(),
    };
    let hailo = match &recipe.hailo {
        Some(section) => Some(hailo::open(
            &section.path,
            section.device,
            &section.version,
            &mut kernel,
            lockdown_words.contains("module.sig_enforce=1"),
        )?),
        None => None,
    };
    let mut root_module_names = recipe.kernel.root_modules.clone();
    root_module_names.extend(hailo.iter().map(|h| h.module.clone()));
    let root_modules = kernel.closure(&root_module_names)?;

    // Root file system.
    let mut root = RootTree {
        dirs: [
            "proc",
            "sys",
            "dev",
            "run",
            "tmp",
            "data",
            // Where the disk helper mounts the ESP for the update service.
            ESP_MOUNT_POINT.trim_start_matches('/'),
            "sbin",
            "usr/bin",
            "usr/sbin",
            "usr/lib64",
            "var",
        ]
        .map(String::from)
        .to_vec(),
        symlinks: vec![
            ("lib".into(), "usr/lib".into()),
            ("lib64".into(), "usr/lib64".into()),
            ("bin".into(), "usr/bin".into()),
            // Debian's programs look for run-time sockets there (iwd for the system bus).
            ("var/run".into(), "../run".into()),
        ],
        // Their file names change between releases (a kernel's release; the recipe's files):
        // staged whole after everything else, behind one symlink each (release_dir.rs). Our
        // binaries and other generated files go there one by one (Origin).
        release_dirs: vec!["/etc/carapace".into(), "/usr/lib/modules".into()],
        ..RootTree::default()
    };

    root.add(
        "/sbin/init",
        0o755,
        Content::Copy(binaries[0].clone()),
        crate_origin("carapace-init"),
    );
    root.add(
        "/usr/bin/agentd",
        0o755,
        Content::Copy(binaries[1].clone()),
        crate_origin("carapace-agentd"),
    );
    root.add(
        "/usr/sbin/carapace-disk",
        0o755,
        Content::Copy(binaries[2].clone()),
        crate_origin("carapace-disk"),
    );
    root.add(
        "/usr/bin/carapace-logger",
        0o755,
        Content::Copy(binaries[3].clone()),
        crate_origin("carapace-logger"),
    );
    for (spec, path) in specs.iter().zip(&binaries).skip(FIXED_BINARIES) {
        root.add(
            &format!("/usr/bin/{}", spec.bin),
            0o755,
            Content::Copy(path.clone()),
            crate_origin(&spec.package),
        );
    }
    // What the dynamically linked files load: Debian's programs (with the programs
    // themselves and the data they read), our dynamic binaries and ONNX Runtime.
    let multiarch = board.architecture.multiarch();
    let mut runtime_files = Vec::new();
    for program in &recipe.debian.programs {
        runtime_files.extend(elf_deps::runtime_closure(program, &debs, multiarch)?);
    }
    runtime_files.extend(package_data::data_files(&recipe.debian.data, &debs)?);
    // HailoRT, its firmware and (in the modules) its driver: one release, in this slot.
    for file in hailo.iter().flat_map(|h| &h.files) {
        if file.image_path.contains("/libhailort.so.") {
            runtime_files.extend(elf_deps::libraries_of(
                &file.image_path,
                &file.source,
                &debs,
                multiarch,
            )?);
        }
        root.add(
            &file.image_path,
            0o644,
            Content::Copy(file.source.clone()),
            file.origin.clone(),
        );
    }
    for (spec, path) in specs.iter().zip(&binaries) {
        if spec.linkage == Linkage::Dynamic {
            let name = format!("/usr/bin/{}", spec.bin);
            runtime_files.extend(elf_deps::libraries_of(&name, path, &debs, multiarch)?);
        }
    }
    let pinned_models = {
        let _cache_lock = CacheLock::acquire(&paths.cache)?;
        models::fetch(&recipe, board.architecture, &paths.cache)?
    };
    for model in pinned_models
        .into_iter()
        .chain(models::pack_files(&recipe)?)
    {
        if model.loaded_at_run_time {
            runtime_files.extend(elf_deps::libraries_of(
                &model.image_path,
                &model.source,
                &debs,
                multiarch,
            )?);
        }
        root.add(
            &model.image_path,
            0o644,
            Content::Copy(model.source),
            model.origin,
        );
    }
    for file in runtime_files {
        // Keep Debian's modes: the ELF loader must stay executable for exec to work.
        let mode = std::fs::metadata(&file.source)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .context(|| format!("stat {}", file.source.display()))?;
        // The loader lives at /lib64/... (a symlink to usr/lib64); store it at the target.
        let path = file.image_path.replacen("/lib64/", "/usr/lib64/", 1);
        root.add(
            &path,
            mode,
            Content::Copy(file.source),
            file.package.origin(),
        );
    }
    if let Some(bsp) = &bsp {
        let (files, links) = bsp.package_files(&bsp_packages, &work)?;
        for file in files {
            let mode = std::fs::metadata(&file.source)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .context(|| format!("stat {}", file.source.display()))?;
            root.add(
                &file.image_path,
                mode,
                Content::Copy(file.source),
                file.origin,
            );
        }
        for link in links {
            let path = link.image_path.trim_start_matches('/').to_string();
            root.symlinks.retain(|(p, _)| *p != path);
            root.symlinks.push((path, link.target));
        }
    }
    let root_modules_dir = format!("/usr/lib/modules/{}", kernel.release);
    for m in &root_modules {
        root.add(
            &format!("{root_modules_dir}/{}", m.rel_path),
            0o644,
            Content::Bytes(m.data.clone()),
            kernel_origin.clone(),
        );
    }
    let generated = || generated_by(&recipe.name);
    root.add(
        &format!("{root_modules_dir}/modules.dep"),
        0o644,
        Content::Bytes(modules_dep(&root_modules).into_bytes()),
        generated(),
    );
    let version = recipe.image_version();
    let image_toml = ImageInfo {
        name: recipe.name.clone(),
        board: board.name.into(),
        version: version.clone(),
        build_id: build_id.clone(),
        hostname: recipe.hostname.clone(),
        pi_trial_start,
    }
    .render();
    root.add(
        IMAGE_INFO_PATH,
        0o644,
        Content::Bytes(image_toml.into_bytes()),
        generated(),
    );
    root.add(
        SERVICE_TABLE_PATH,
        0o644,
        Content::Bytes(recipe.services_toml()?.into_bytes()),
        generated(),
    );
    root.add(
        accounts::PASSWD_PATH,
        0o644,
        Content::Bytes(accounts::passwd(&recipe).into_bytes()),
        generated(),
    );
    root.add(
        accounts::GROUP_PATH,
        0o644,
        Content::Bytes(accounts::group(&recipe).into_bytes()),
        generated(),
    );
    for skill in &recipe.skills {
        let (name, files) = skill
            .checked
            .as_ref()
            .ok_or_else(|| Error::image(format!("[[skill]] {} was not checked", skill.path)))?;
        for (inside, source) in files {
            root.add(
                &format!("{}/{name}/{inside}", carapace_skills::SKILLS_DIR),
                0o644,
                Content::Copy(source.clone()),
                Origin::Generated {
                    by: format!("recipe {} [[skill]] {}", recipe.name, skill.path),
                },
            );
        }
    }
    for file in &recipe.files {
        root.add(
            &file.path,
            0o644,
            Content::Bytes(file.text.clone().into_bytes()),
            Origin::Generated {
                by: format!("recipe {} [[file]]", recipe.name),
            },
        );
    }
    if let Some(update) = &recipe.update {
        let files = update
            .image_files()
            .map_err(|message| Error::RecipeInvalid {
                path: recipe_path.to_path_buf(),
                message,
            })?;
        for (path, text) in files {
            root.add(
                path,
                0o644,
                Content::Bytes(text.into_bytes()),
                Origin::Generated {
                    by: format!("recipe {} [update]", recipe.name),
                },
            );
        }
    }
    for file in network::network_files(&recipe)? {
        root.add(file.path, 0o644, Content::Bytes(file.bytes), generated());
    }

    let staging = work.join("rootfs");
    root.stage(&staging)?;
    let erofs_path = work.join("root.erofs");
    make_erofs(
        &staging,
        &erofs_path,
        &derived_uuid(&recipe.name, "erofs"),
        epoch,
    )?;
    let mut root_data =
        std::fs::read(&erofs_path).context(|| format!("read {}", erofs_path.display()))?;
    root_data.resize(root_data.len().div_ceil(verity::BLOCK) * verity::BLOCK, 0);
    let salt = derived_bytes(&recipe.name, &format!("verity-salt/{build_id}"));
    let tree = verity::build(&root_data, &salt);
    let root_slot = disk.partition(ROOT_A_NAME);
    let root_bytes = (root_data.len() + tree.tree.len()) as u64;
    if root_bytes > root_slot.size {
        return Err(Error::DoesNotFit(format!(
            "the root (erofs + verity) needs {} MiB but a slot is {} MiB; raise disk.root_mib",
            root_bytes.div_ceil(1 << 20),
            root_slot.size >> 20
        )));
    }

    // Boot: kernel command line, initramfs, ESP.
    let ids = GptIds {
        disk: derived_uuid(&recipe.name, "disk"),
        partitions: disk
            .partitions
            .iter()
            .map(|p| derived_uuid(&recipe.name, p.name))
            .collect(),
    };
    let partuuid = |name: &str| {
        let i = disk
            .partitions
            .iter()
            .position(|p| p.name == name)
            .unwrap_or(0);
        ids.partitions[i].to_string()
    };
    let params = BootParams {
        slot: Slot::A,
        root_partuuid: partuuid(ROOT_A_NAME),
        data_partuuid: partuuid(DATA_NAME),
        esp_partuuid: partuuid(disk.first().name),
        verity: VerityParams {
            root_hash: hex::encode(tree.root_hash),
            salt: hex::encode(salt),
            data_blocks: tree.data_blocks,
            hash_start_block: tree.data_blocks,
        },
    };
    let mut kernel_words = format!(
        "console=tty0 console={} quiet panic=10 {}",
        board.console, lockdown_words,
    );
    for word in &recipe.kernel.extra_cmdline {
        kernel_words.push(' ');
        kernel_words.push_str(word);
    }
    // The same composition the box uses for the slot an update writes.
    let cmdline = carapace_update::manifest::kernel_command_line(&kernel_words, &params);
    // Slot B's, for a Secure Boot build: its UKI carries it signed (an update installs it).
    let params_b = BootParams {
        slot: Slot::B,
        root_partuuid: partuuid(ROOT_B_NAME),
        ..params.clone()
    };
    let cmdline_b = carapace_update::manifest::kernel_command_line(&kernel_words, &params_b);
    let init_bytes = std::fs::read(&binaries[0]).context(|| "read the init binary".into())?;
    let initrd = initramfs::build(&init_bytes, &kernel.release, &boot_modules, epoch as u32)?;
    let vmlinuz =
        std::fs::read(&kernel.vmlinuz).context(|| format!("read {}", kernel.vmlinuz.display()))?;
    let mut slot_info = SlotInfo {
        recipe: recipe.name.clone(),
        board: board.name.into(),
        version: version.clone(),
        build_id: build_id.clone(),
        kernel_cmdline: kernel_words,
        verity: carapace_update::Verity {
            root_hash: carapace_update::Sha256Digest(tree.root_hash),
            salt: hex::encode(salt),
            data_blocks: tree.data_blocks,
            hash_start_block: tree.data_blocks,
        },
        update_trust: recipe.update.as_ref().map(UpdateTrust::of),
        boot_files: Vec::new(),
    };
    let slot_a = SlotABoot {
        board,
        disk: &disk,
        recipe: &recipe,
        version: &version,
        cmdline: &cmdline,
        cmdline_b: &cmdline_b,
        vmlinuz,
        initrd: initrd.compressed.clone(),
        vmlinuz_origin: vmlinuz_origin.clone(),
        kernel_release: &kernel.release,
        build_id: &build_id,
        secure_boot: secure_boot.as_ref(),
        epoch,
    };
    let boot = match &board.boot_flow {
        BootFlow::UefiSystemdBoot(loader) => boot_partitions::uefi(loader, &debs, slot_a)?,
        BootFlow::PiTryboot(firmware) => {
            let trees = match &pi_kernel {
                Some(_) => boot_partitions::PiDeviceTrees::VendorKernel,
                None => boot_partitions::PiDeviceTrees::Board(firmware.device_trees),
            };
            boot_partitions::pi(trees, &kernel, &origin_in_kernel, slot_a)?
        }
    };
    slot_info.boot_files = boot
        .slot_files
        .iter()
        .map(|(path, _)| path.clone())
        .collect();

    // The disk image, written under a temporary name and renamed when complete.
    std::fs::create_dir_all(&paths.out).context(|| format!("create {}", paths.out.display()))?;
    let partial = |path: &Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    let image_partial = partial(&outputs.image);
    let zst_partial = partial(&outputs.image_zst);
    let sbom_partial = partial(&outputs.sbom);
    let written = write_disk(
        &image_partial,
        &disk,
        &ids,
        &boot.images,
        &root_data,
        &tree.tree,
    )
    .and_then(|()| compress_zst(&image_partial, &zst_partial))
    // What `carapace bundle` makes an update of (it needs sbom.json too: a finished build).
    .and_then(|()| {
        slot_files::write(
            &paths.out,
            &slot_info,
            &root_data,
            &tree.tree,
            &boot.slot_files,
        )
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&image_partial);
        let _ = std::fs::remove_file(&zst_partial);
        let _ = slot_files::remove(&paths.out);
        return Err(e);
    }

    // SBOM.
    let mut files = Vec::new();
    for f in &root.files {
        let data = match &f.content {
            Content::Bytes(b) => b.clone(),
            Content::Copy(p) => std::fs::read(p).context(|| format!("read {}", p.display()))?,
        };
        files.push(SbomFile {
            // Where the bytes are: a file a release changes is reached from f.path by a
            // symlink.
            path: format!("root:{}", root.stored_path(f)),
            sha256: sha256_hex(&data),
            size: data.len() as u64,
            origin: f.origin.clone(),
        });
    }
    for (path, data) in &initrd.files {
        let origin = if path == "init" {
            crate_origin("carapace-init")
        } else if path.ends_with(".ko") {
            kernel_origin.clone()
        } else {
            generated()
        };
        files.push(SbomFile {
            path: format!("initramfs:/{path}"),
            sha256: sha256_hex(data),
            size: data.len() as u64,
            origin,
        });
    }
    files.extend(boot.sbom);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let sbom = Sbom {
        image: recipe.name.clone(),
        board: board.name.into(),
        build_id: build_id.clone(),
        debian_suite: recipe.debian.suite.clone(),
        files,
    };
    let sbom_text = serde_json::to_string_pretty(&sbom).map_err(|e| Error::image(e.to_string()))?;
    write_atomic(&sbom_partial, sbom_text.as_bytes())?;
    rename_durably(&image_partial, &outputs.image)?;
    rename_durably(&zst_partial, &outputs.image_zst)?;
    rename_durably(&sbom_partial, &outputs.sbom)?;
    if let Some((keys, firmware)) = secure_boot
        .as_ref()
        .filter(|_| enrolls_keys)
        .zip(board.qemu.secure_boot)
    {
        keys.enroll(workspace, Path::new(firmware.vars_template), &enrolled_vars)?;
    }
    if let Some(digest) = inputs {
        write_atomic(&stamp, format!("{digest}\n").as_bytes())?;
    }
    let _ = std::fs::remove_dir_all(&work);

    eprintln!(
        "carapace: built {} ({} MiB raw, root {} KiB, initramfs {} KiB, build {build_id}) in {} s",
        outputs.image.display(),
        disk.total_size >> 20,
        root_bytes >> 10,
        initrd.compressed.len() >> 10,
        started.elapsed().as_secs()
    );
    Ok(outputs)
}

/// Our binaries in `recipe`'s image: init, agentd, the disk helper and the logger, the recipe's
/// extra binaries, and the skill host's program where the image has the service.
fn binary_specs(recipe: &Recipe) -> Vec<BinarySpec> {
    let mut specs = vec![
        BinarySpec {
            package: "carapace-init".into(),
            bin: "init".into(),
            linkage: Linkage::Static,
        },
        BinarySpec {
            package: "carapace-agentd".into(),
            bin: "agentd".into(),
            linkage: Linkage::Static,
        },
        BinarySpec {
            package: "carapace-disk".into(),
            bin: "carapace-disk".into(),
            linkage: Linkage::Static,
        },
        BinarySpec {
            package: "carapace-logger".into(),
            bin: "carapace-logger".into(),
            linkage: Linkage::Static,
        },
    ];
    for extra in &recipe.binaries {
        specs.push(BinarySpec {
            package: extra.package.clone(),
            bin: extra.bin.clone(),
            linkage: extra.linkage,
        });
    }
    // The skill host service's program (SKILLHOST_PROGRAM, /usr/bin as every extra binary),
    // in the images with the service (recipe.rs refuses skills with code elsewhere). It is
    // built for every image all the same (cargo_build::STATIC_SET).
    if recipe.has_skill_host() && !specs.iter().any(|spec| spec.bin == "carapace-skillhost") {
        specs.push(BinarySpec {
            package: "carapace-skillhost".into(),
            bin: "carapace-skillhost".into(),
            linkage: Linkage::Static,
        });
    }
    specs
}

/// The binaries every image carries (the first of [`binary_specs`]); the recipe's follow.
const FIXED_BINARIES: usize = 4;

/// `carapace prepare`: what a build of `recipe_path` fetches and compiles (its packages, its
/// binaries, its pinned models) without making the image, so that a later build finds them
/// ready. `make test` runs it while the unit tests leave cores idle.
pub fn prepare(recipe_path: &Path, workspace: &Path) -> Result<()> {
    let (recipe, _) = Recipe::load(recipe_path)?;
    let board = board::find(&recipe.board)?;
    let paths = Paths::for_recipe(workspace, &recipe);
    {
        let _cache_lock = CacheLock::acquire(&paths.cache)?;
        packages::fetch(
            recipe_path,
            &recipe,
            board,
            &paths.cache,
            BuildOptions::default().lock_policy(),
        )?;
    }
    cargo_build::build(workspace, board.architecture, &binary_specs(&recipe))?;
    let _cache_lock = CacheLock::acquire(&paths.cache)?;
    models::fetch(&recipe, board.architecture, &paths.cache)?;
    Ok(())
}

/// `carapace lock`: pins what the recipe asks for, moves pins the archive dropped, and moves
/// the pins `update` names to the archive's current versions; prints the changes.
pub fn lock_recipe(
    recipe_path: &Path,
    workspace: &Path,
    update: &UpdateRequest,
) -> Result<Resolved> {
    let (recipe, _) = Recipe::load(recipe_path)?;
    let board = board::find(&recipe.board)?;
    let cache = default_cache(workspace);
    let _cache_lock = CacheLock::acquire(&cache)?;
    let lock_path = Recipe::lock_path(recipe_path);
    let request = packages::Request::for_recipe(board, &recipe);
    let resolved = packages::resolve(&lock_path, &request, &cache, LockPolicy::Update, update)?;
    packages::report(&lock_path, &resolved.changes);
    Ok(resolved)
}

/// The origin of a file the build wrote itself.
pub fn generated_by(recipe_name: &str) -> Origin {
    Origin::Generated {
        by: format!("carapace build (recipe {recipe_name})"),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write_disk(
    path: &Path,
    disk: &DiskPlan,
    ids: &GptIds,
    boot: &[(&str, Vec<u8>)],
    root: &[u8],
    tree: &[u8],
) -> Result<()> {
    let ctx = || format!("write {}", path.display());
    let mut file = std::fs::File::create(path).context(ctx)?;
    // A sparse file: root-b and data stay holes until something writes them.
    file.set_len(disk.total_size).context(ctx)?;
    write_gpt(&mut file, disk, ids)?;
    // All-zero chunks are skipped: they stay holes, which read as zeros. The ESP is mostly
    // empty FAT space, and writing it whole made 256 MiB of the image's 260 on disk.
    let mut put = |offset: u64, bytes: &[u8]| -> Result<()> {
        const CHUNK: usize = 64 * 1024;
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            if chunk.iter().all(|&b| b == 0) {
                continue;
            }
            file.seek(SeekFrom::Start(offset + (i * CHUNK) as u64))
                .context(ctx)?;
            file.write_all(chunk).context(ctx)?;
        }
        Ok(())
    };
    for (name, fat) in boot {
        put(disk.partition(name).offset, fat)?;
    }
    let root_a = disk.partition(ROOT_A_NAME).offset;
    put(root_a, root)?;
    put(root_a + root.len() as u64, tree)?;
    file.sync_all().context(ctx)
}

/// The image compressed whole. Its holes (most of a fresh image: /data's and slot B's space)
/// are fed to the encoder from memory rather than read: reading 2 GiB of holes costs the
/// kernel seconds of zero-filling, the encoder a fraction of that.
fn compress_zst(image: &Path, out: &Path) -> Result<()> {
    use std::io::{Read, Seek, Write};
    let ctx = || format!("compress {} to {}", image.display(), out.display());
    let mut input = std::fs::File::open(image).context(ctx)?;
    let len = input.metadata().context(ctx)?.len();
    let ranges = crate::fsutil::data_ranges(&input).context(ctx)?;
    let output = std::fs::File::create(out).context(ctx)?;
    let mut encoder = zstd::stream::Encoder::new(output, 3).context(ctx)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    // A last empty range at the end: the zeros after the last data.
    for range in ranges.into_iter().chain(std::iter::once(len..len)) {
        while at < range.start {
            let n = (range.start - at).min(zeros.len() as u64) as usize;
            encoder.write_all(&zeros[..n]).context(ctx)?;
            at += n as u64;
        }
        input
            .seek(std::io::SeekFrom::Start(range.start))
            .context(ctx)?;
        let mut data = (&mut input).take(range.end - range.start);
        at += std::io::copy(&mut data, &mut encoder).context(ctx)?;
    }
    let output = encoder.finish().context(ctx)?;
    output.sync_all().context(ctx)
}

/// The workspace root: the nearest ancestor of the current directory with the members.
pub fn find_workspace() -> Result<PathBuf> {
    let start = std::env::current_dir().context(|| "current directory".into())?;
    for dir in start.ancestors() {
        if dir.join("Cargo.toml").exists()
            && dir.join("init").is_dir()
            && dir.join("image").is_dir()
        {
            return Ok(dir.to_path_buf());
        }
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    compiled.filter(|d| d.join("init").is_dir()).ok_or_else(|| {
        Error::image(
            "run carapace inside the Carapace checkout (no workspace with init/ and image/ found)",
        )
    })
}

pub fn board_for(recipe: &Recipe) -> Result<&'static Board> {
    board::find(&recipe.board)
}

/// How a Pi image starts a trial: the firmware's flag with Raspberry Pi's kernel, else the
/// board's way (kexec under Debian's). An image whose update service kexecs needs kexec-tools.
fn pi_trial_start(
    board: &Board,
    recipe_path: &Path,
    recipe: &Recipe,
) -> Result<Option<PiTrialStart>> {
    let BootFlow::PiTryboot(firmware) = &board.boot_flow else {
        return Ok(None);
    };
    let start = match recipe.pi_kernel {
        Some(_) => PiTrialStart::FirmwareFlag,
        None => firmware.trial_start,
    };
    let updates = recipe.services.iter().any(|s| s.boot_control);
    if start == PiTrialStart::Kexec
        && updates
        && !recipe.debian.programs.iter().any(|p| p == KEXEC_PROGRAM)
    {
        return Err(Error::RecipeInvalid {
            path: recipe_path.to_path_buf(),
            message: format!(
                "the update service starts a trial with kexec under Debian's kernel: add \"kexec-tools\" to [debian] packages and \"{KEXEC_PROGRAM}\" to programs"
            ),
        });
    }
    Ok(Some(start))
}

/// The keys of a Secure Boot build, on a board whose firmware verifies what it starts: UEFI
/// Secure Boot, or a Raspberry Pi 5's signed boot (db.key signs each slot's boot.img).
fn secure_boot_for(board: &Board, dir: &Path) -> Result<SecureBootKeys> {
    if let BootFlow::PiTryboot(_) = board.boot_flow {
        return SecureBootKeys::open_signing_key(dir);
    }
    if !matches!(board.boot_flow, BootFlow::UefiSystemdBoot(_)) {
        return Err(Error::image(format!(
            "board {} does not boot through UEFI or a Raspberry Pi's signed boot: \
             --secure-boot-keys signs systemd-boot and unified kernel images, or a Pi 5's \
             boot.img, and this board's firmware starts neither",
            board.name
        )));
    }
    if board.qemu.secure_boot.is_none() {
        return Err(Error::image(format!(
            "board {}: QEMU's Secure Boot firmware for this board is not set up, so a signed \
             image could not be booted here",
            board.name
        )));
    }
    SecureBootKeys::open(dir)
}

/// A signed Pi image cannot carry the update service yet: it would install an update's boot
/// files loose beside no boot.img, which a Pi whose EEPROM enforces signed boot refuses to
/// start once committed (the kexec trial would start them anyway), and it reads no kernel out
/// of a boot.img for its kexec trial. docs/boot-contract.md, "Raspberry Pi 5: signed boot".
fn refuse_signed_pi_updates(board: &Board, recipe_path: &Path, recipe: &Recipe) -> Result<()> {
    let BootFlow::PiTryboot(_) = board.boot_flow else {
        return Ok(());
    };
    match recipe.services.iter().find(|s| s.boot_control) {
        None => Ok(()),
        Some(service) => Err(Error::RecipeInvalid {
            path: recipe_path.to_path_buf(),
            message: format!(
                "service {} has boot_control (the update service), which cannot update a \
                 signed Raspberry Pi 5 image yet: it does not install a slot's signed boot.img \
                 and boot.sig (an update would not boot under the EEPROM's signed boot); build \
                 it without --secure-boot-keys, or without the update service",
                service.name
            ),
        }),
    }
}
