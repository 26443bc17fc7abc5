//! `carapace`: build Carapace images from recipes and boot them in QEMU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use carapace_image::build::{BuildOptions, build_with, find_workspace, lock_recipe};
use carapace_image::bundle::{BundleOptions, bundle};
use carapace_image::flash::settings::OwnerFlags;
use carapace_image::keygen::{KeyListRequest, keygen, parse_not_after, sign_key_list};
use carapace_image::packages::UpdateRequest;
use carapace_image::publish::{PublishOptions, publish};
use carapace_image::run::{RunOptions, built_image, run};
use carapace_owner::OwnerSettings;
use carapace_update::{ChunkerParams, KeyId, KeyKind};

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
        /// Sign for Secure Boot with the keys in DIR (carapace keygen --secure-boot DIR):
        /// systemd-boot and the slot's unified kernel image, and write
        /// out/<name>/secure-boot-vars.fd with them enrolled (carapace run --secure-boot); on a
        /// Raspberry Pi 5, each slot's boot.img for its EEPROM's signed boot (db.key and db.crt).
        #[arg(long, value_name = "DIR")]
        secure_boot_keys: Option<PathBuf>,
    },
    /// Fetch what building each recipe needs (its packages and pinned models) and compile its
    /// binaries, without making the images: a later build finds them ready.
    Prepare {
        #[arg(long = "recipe", required = true, value_name = "RECIPE")]
        recipes: Vec<PathBuf>,
    },
    /// Skills with code.
    Skill {
        #[command(subcommand)]
        command: SkillCommand,
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
    /// Make an update key pair: OUT, the secret (0600, never overwritten), and OUT.pub.
    /// With --secure-boot: a new folder OUT with the Secure Boot keys PK, KEK and db.
    Keygen {
        /// The root key, which signs only key lists: make it once and keep it offline.
        #[arg(long, conflicts_with = "secure_boot")]
        root: bool,
        /// Secure Boot keys (RSA 2048 with X.509 certificates) for carapace build
        /// --secure-boot-keys.
        #[arg(long)]
        secure_boot: bool,
        out: PathBuf,
    },
    /// Key lists: the signing keys a box trusts, signed by the root key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Make an update of the recipe's build (building it first when there is none):
    /// out/<name>/bundle/ with manifest.json, manifest.sig and chunks/.
    Bundle {
        #[arg(long)]
        recipe: PathBuf,
        /// The signing key's secret file (carapace keygen).
        #[arg(long, value_name = "SECRET")]
        key: PathBuf,
        /// The oldest running version the update may replace (default: any).
        #[arg(long, value_name = "VERSION")]
        min_from: Option<String>,
        /// Build first even when a finished build is there.
        #[arg(long)]
        build: bool,
        /// As for build.
        #[arg(long)]
        locked: bool,
        /// A slot directory of an earlier release (a copy of its out/<recipe>/slot): boxes
        /// running it download a patch instead of the changed chunks. May be repeated.
        #[arg(long, value_name = "SLOT_DIR")]
        patch_from: Vec<PathBuf>,
        /// As for build: sign for Secure Boot with the keys in DIR (the bundle carries each
        /// slot's signed UKI; a box that boots UKIs takes only such updates).
        #[arg(long, value_name = "DIR")]
        secure_boot_keys: Option<PathBuf>,
    },
    /// Put a bundle into an update repository (a directory for any static web server or
    /// object store) and point a channel at it.
    Publish {
        #[arg(long, value_name = "DIR")]
        bundle: PathBuf,
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        #[arg(long, value_enum)]
        channel: Channel,
        /// The fraction of the fleet offered the update, 0 to 1 (0.1: a tenth).
        #[arg(long, value_name = "F")]
        rollout: String,
        /// The signing key's secret file, for the channel pointer.
        #[arg(long, value_name = "SECRET")]
        key: PathBuf,
        /// A newer key list (carapace keys sign) to serve as keys.json.
        #[arg(long, value_name = "FILE")]
        key_list: Option<PathBuf>,
    },
    /// Bytes a box running OLD downloads to get NEW, against downloading NEW whole. Each is
    /// files (root images, boot files) or build slot directories (out/<name>/slot).
    UpdateSize {
        #[arg(long, num_args = 1.., required = true, value_name = "PATH")]
        old: Vec<PathBuf>,
        #[arg(long, num_args = 1.., required = true, value_name = "PATH")]
        new: Vec<PathBuf>,
        /// Average chunk size in bytes (min a quarter of it, max four times).
        #[arg(long, value_name = "BYTES")]
        avg: Option<u32>,
    },
    /// Model packs: models beside the ones the image pins, signed like updates.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Write an image to an SD card, a USB stick or a file: runs of zeros skipped, synced,
    /// read back and compared. Owner settings go on its boot partition, and the pairing QR
    /// code is printed.
    Flash {
        /// The recipe whose image to write (built first if it is missing).
        #[arg(long, required_unless_present = "image", conflicts_with = "image")]
        recipe: Option<PathBuf>,
        /// An image file instead: carapace.img or carapace.img.zst.
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// The whole disk (/dev/sdX, /dev/mmcblkN) or the file to write; without it, the
        /// disks that look like an SD card or USB stick are listed.
        #[arg(long, value_name = "DISK|FILE")]
        to: Option<PathBuf>,
        /// Write to a disk that is not removable, or replace an existing file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        owner: OwnerFlags,
        /// Also write the pairing QR code as a PNG image.
        #[arg(long, value_name = "FILE")]
        qr_png: Option<PathBuf>,
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
        /// Boot the Secure Boot firmware with the build's keys enrolled (a build made with
        /// --secure-boot-keys).
        #[arg(long)]
        secure_boot: bool,
        /// Give the machine a software TPM 2.0 (swtpm, its state in out/<name>/run/tpm): a /data
        /// formatted on it is encrypted, its key sealed to the TPM against the Secure Boot
        /// state, so later runs of that disk need --tpm (and the same --secure-boot) too.
        #[arg(long)]
        tpm: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a key list signed by the root key.
    Sign {
        /// The root key's secret file (carapace keygen --root).
        #[arg(long, value_name = "ROOT_SECRET")]
        root: PathBuf,
        /// Public key files (OUT.pub) of the signing keys to trust.
        #[arg(long = "key", value_name = "PUB", num_args = 1..)]
        keys: Vec<PathBuf>,
        /// Key ids never to trust again.
        #[arg(long, value_name = "ID", num_args = 1..)]
        revoke: Vec<KeyId>,
        /// ID=YYYY-MM-DD: the listed key's signatures count until the end of that day (UTC).
        #[arg(long, value_name = "ID=DATE", value_parser = parse_not_after)]
        not_after: Vec<(KeyId, u64)>,
        /// Higher than every list published before: boxes take only a newer list.
        #[arg(long)]
        serial: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Turn a local model folder into a signed pack, OUT/<name>-<version>/, for a recipe's
    /// [[model_pack]] or a box's engine to load.
    Add {
        /// The model's files (config.json, model.safetensors, tokenizer.json, ...).
        dir: PathBuf,
        /// The model's id in the engine's API.
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// What it does, as the engine names it: embeddings, transcription, voice_activity,
        /// speech (a Piper voice, which goes in split at its decoder), ocr,
        /// image_description.
        #[arg(long)]
        capability: String,
        #[arg(long, value_enum, default_value_t = Runtime::Candle)]
        runs_on: Runtime,
        /// The signing key's secret file (carapace keygen): the boxes' key list must name it.
        #[arg(long, value_name = "SECRET")]
        key: PathBuf,
        /// Where the pack's folder is made.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Also write the pack as one file, OUT/<name>-<version>.tar, to put behind a link
        /// for a running box's `/add_model LINK`.
        #[arg(long)]
        tar: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    Candle,
    Onnxruntime,
}

#[derive(Clone, Copy, ValueEnum)]
enum Channel {
    Stable,
    Beta,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Stable => "stable",
            Channel::Beta => "beta",
        }
    }
}

#[derive(Subcommand)]
enum SkillCommand {
    /// Build DIR/skill.wasm from DIR/scripts/tools.py (with componentize-py) or
    /// DIR/scripts/tools.js (with componentize-js), one function per tool DIR/skill.toml
    /// declares: a WebAssembly component the box runs in its sandbox. Also writes DIR.zip, the
    /// skill as the owner sends it to the box in the chat.
    Build { dir: PathBuf },
    /// Sign the built skill DIR as a pack, OUT/<name>-<version>.zip: the files the box takes
    /// and a manifest of them signed with an update signing key. Boxes whose key list names the
    /// key show the owner it is signed and refuse it if a byte changed; a recipe lists one as
    /// [[skill_pack]] path = "...".
    Pack {
        dir: PathBuf,
        #[arg(long)]
        version: String,
        /// The signing key's secret file (carapace keygen): the boxes' key list must name it.
        #[arg(long, value_name = "SECRET")]
        key: PathBuf,
        /// Where the zip is written.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
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
    let result = match cli.command {
        Command::Keygen {
            secure_boot: true,
            out,
            ..
        } => secure_boot_keys(&out),
        Command::Keygen { root, out, .. } => key_pair(root, &out),
        Command::Keys {
            command:
                KeysCommand::Sign {
                    root,
                    keys,
                    revoke,
                    not_after,
                    serial,
                    out,
                },
        } => key_list(&KeyListRequest {
            root_secret: root,
            keys,
            revoke,
            not_after,
            serial,
            out,
        }),
        Command::Publish {
            bundle,
            to,
            channel,
            rollout,
            key,
            key_list,
        } => publish_bundle(&PublishOptions {
            bundle,
            to,
            channel: channel.name().into(),
            rollout,
            key,
            key_list,
        }),
        Command::UpdateSize { old, new, avg } => update_size(&old, &new, avg),
        Command::Models {
            command:
                ModelsCommand::Add {
                    dir,
                    name,
                    version,
                    capability,
                    runs_on,
                    key,
                    out,
                    tar,
                },
        } => carapace_update::SecretKey::load(&key, KeyKind::Signing)
            .map_err(Into::into)
            .and_then(|key| {
                add_model_pack(
                    &carapace_models::PackRequest {
                        model_dir: &dir,
                        name: &name,
                        version: &version,
                        capability: &capability,
                        runs_on: match runs_on {
                            Runtime::Candle => carapace_models::RunsOn::Candle,
                            Runtime::Onnxruntime => carapace_models::RunsOn::Onnxruntime,
                        },
                        key: &key,
                        out_dir: &out,
                    },
                    tar,
                )
            }),
        Command::Flash {
            recipe: None,
            image: Some(image),
            to,
            force,
            owner,
            qr_png,
        } => flash_target(to).and_then(|to| {
            let settings = compose(&owner)?;
            flash(&image, &to, force, settings, qr_png.as_deref())
        }),
        Command::Skill {
            command:
                SkillCommand::Pack {
                    dir,
                    version,
                    key,
                    out,
                },
        } => skill_pack(&dir, &version, &key, &out),
        command => find_workspace().and_then(|workspace| in_workspace(command, &workspace)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carapace: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn in_workspace(
    command: Command,
    workspace: &std::path::Path,
) -> carapace_image::error::Result<()> {
    let workspace = workspace.to_path_buf();
    match command {
        Command::Skill {
            command: SkillCommand::Build { dir },
        } => {
            let out = carapace_image::skill_build::build(&dir, &workspace)?;
            let zipped = carapace_image::skill_zip::write_beside(&dir)?;
            println!("{}", out.display());
            println!(
                "{} (send it to your box in the chat to install the skill)",
                zipped.display()
            );
            Ok(())
        }
        Command::Prepare { recipes } => {
            for recipe in &recipes {
                carapace_image::build::prepare(recipe, &workspace)?;
                eprintln!("carapace: prepared {}", recipe.display());
            }
            Ok(())
        }
        Command::Build {
            recipe,
            locked,
            owner_settings,
            secure_boot_keys,
        } => {
            let settings = owner_settings
                .as_deref()
                .map(|file| carapace_image::owner::load(file, &recipe))
                .transpose()?;
            let options = BuildOptions {
                locked,
                secure_boot_keys,
            };
            let out = build_with(&recipe, &workspace, options)?;
            println!(
                "{}\n{}\n{}",
                out.image.display(),
                out.image_zst.display(),
                out.sbom.display()
            );
            match settings {
                Some(settings) => {
                    let pairing = carapace_image::owner::personalise(&out.image, &settings)?;
                    eprintln!(
                        "carapace: owner settings are on carapace.img's boot partition (the .zst stays generic)"
                    );
                    print_pairing(&pairing);
                    Ok(())
                }
                None => Ok(()),
            }
        }
        Command::Bundle {
            recipe,
            key,
            min_from,
            build,
            locked,
            patch_from,
            secure_boot_keys,
        } => make_bundle(
            &recipe,
            &workspace,
            &BundleOptions {
                key,
                min_from,
                build,
                locked,
                patch_from,
                secure_boot_keys,
            },
        ),
        Command::Audit { .. }
        | Command::Keygen { .. }
        | Command::Keys { .. }
        | Command::Publish { .. }
        | Command::UpdateSize { .. }
        | Command::Models { .. }
        | Command::Skill {
            command: SkillCommand::Pack { .. },
        } => Ok(()),
        Command::Flash {
            recipe,
            image,
            to,
            force,
            owner,
            qr_png,
        } => {
            // The target and the settings are checked before a build that may take minutes.
            let to = flash_target(to)?;
            let settings = compose(&owner)?;
            let image = match (recipe, image) {
                (_, Some(image)) => image,
                (Some(recipe), None) => {
                    if settings.is_some() {
                        carapace_image::owner::check_recipe_takes_settings(&recipe)?;
                    }
                    built_image(&recipe, &workspace)?
                }
                (None, None) => {
                    return Err(carapace_image::Error::image(
                        "carapace flash needs --recipe or --image",
                    ));
                }
            };
            flash(&image, &to, force, settings, qr_png.as_deref())
        }
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
            secure_boot,
            tpm,
        } => run(
            &recipe,
            &workspace,
            &RunOptions {
                until_ready,
                timeout: Duration::from_secs(timeout),
                fresh,
                secure_boot,
                tpm,
            },
        ),
    }
}

/// The owner's settings from `carapace flash`'s file and flags, checked whole.
fn compose(owner: &OwnerFlags) -> carapace_image::error::Result<Option<OwnerSettings>> {
    carapace_image::flash::settings::compose(owner).map_err(carapace_image::Error::image)
}

/// `carapace flash --to`; without it, an error that lists the disks it may mean.
fn flash_target(to: Option<PathBuf>) -> carapace_image::error::Result<PathBuf> {
    to.ok_or_else(|| {
        let disks = carapace_image::flash::target::Sysfs::host().candidates();
        let listed = if disks.is_empty() {
            "no removable disk is plugged in (lsblk lists every disk)".to_string()
        } else {
            format!(
                "these look like an SD card or USB stick:\n  {}",
                disks.join("\n  ")
            )
        };
        carapace_image::Error::image(format!(
            "carapace flash needs --to DISK (or --to FILE); {listed}"
        ))
    })
}

fn flash(
    image: &std::path::Path,
    to: &std::path::Path,
    force: bool,
    settings: Option<OwnerSettings>,
    qr_png: Option<&std::path::Path>,
) -> carapace_image::error::Result<()> {
    use carapace_image::flash::FlashOptions;
    let flashed = carapace_image::flash::flash(&FlashOptions {
        image,
        to,
        force,
        settings: settings.as_ref(),
    })?;
    eprintln!(
        "carapace: flashed {} to {}: {} written, the other {} were zeros",
        image.display(),
        to.display(),
        carapace_image::flash::target::human(flashed.data),
        carapace_image::flash::target::human(flashed.length - flashed.data),
    );
    if let Some(settings) = &settings {
        print_pairing(&carapace_image::owner::pairing(settings, qr_png)?);
    }
    eprintln!("carapace: {} is ready to go into the box", to.display());
    Ok(())
}

fn skill_pack(
    dir: &std::path::Path,
    version: &str,
    key: &std::path::Path,
    out: &std::path::Path,
) -> carapace_image::error::Result<()> {
    let key = carapace_update::SecretKey::load(key, KeyKind::Signing)?;
    let zipped = carapace_image::skill_pack::make(dir, version, &key, out)?;
    println!("{}", zipped.display());
    eprintln!(
        "carapace: skill pack {} signed by key {}: send it to a box in the chat, or list it in \
         a recipe as [[skill_pack]] path = \"...\"",
        zipped.display(),
        key.id()
    );
    Ok(())
}

fn add_model_pack(
    request: &carapace_models::PackRequest<'_>,
    tar: bool,
) -> carapace_image::error::Result<()> {
    let made =
        carapace_models::make_pack(request).map_err(carapace_image::error::Error::ModelsAdd)?;
    let pack = made.dir;
    match made.voice {
        Some(carapace_models::VoicePacked::Split { model }) => eprintln!(
            "carapace: the Piper voice {model} went in split at its decoder ({} and {}), the \
             same numbers, so that the box decodes a sentence on all its cores",
            carapace_models::piper_split::FRONT,
            carapace_models::piper_split::DECODER
        ),
        Some(carapace_models::VoicePacked::Whole { model, reason }) => eprintln!(
            "carapace: the voice {model} went in whole (the box runs it as one model, \
             not split across its cores): the split could not lay it out: {reason}"
        ),
        None => {}
    }
    println!("{}", pack.display());
    eprintln!(
        "carapace: model pack {} signed by key {}: list it in a recipe as [[model_pack]] path = \"...\"",
        pack.display(),
        request.key.id()
    );
    if tar {
        let file = carapace_models::write_pack_tar(&pack, request.out_dir)
            .map_err(carapace_image::error::Error::ModelsAdd)?;
        println!("{}", file.display());
        eprintln!(
            "carapace: {} holds the same pack: put it behind an https link and send the box \
             /add_model LINK",
            file.display()
        );
    }
    Ok(())
}

fn secure_boot_keys(dir: &std::path::Path) -> carapace_image::error::Result<()> {
    carapace_image::secure_boot::generate(dir, "Carapace")?;
    println!("{}", dir.display());
    eprintln!(
        "carapace: Secure Boot keys PK, KEK and db in {} (the .key files are secrets, 0600). \
         Sign images with them: carapace build --recipe R --secure-boot-keys {}; only db.key \
         is needed for that, so keep PK.key and KEK.key offline.",
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn key_pair(root: bool, out: &std::path::Path) -> carapace_image::error::Result<()> {
    let kind = if root {
        KeyKind::Root
    } else {
        KeyKind::Signing
    };
    let public = keygen(out, kind)?;
    let public_path = carapace_update::public_path_for(out);
    println!("{}\n{}", out.display(), public_path.display());
    eprintln!(
        "carapace: {kind} key {}: the secret is in {} (0600; never share it), the public key in {}",
        public.id(),
        out.display(),
        public_path.display()
    );
    if root {
        eprintln!(
            "Keep the secret offline. Images trust it through the recipe's [update] section:\n  \
             root_key = \"{}\"",
            public.to_hex()
        );
    } else {
        eprintln!(
            "Boxes trust it once a key list names it: carapace keys sign --root ROOT_SECRET --key {} \
             --serial N --out keys.json",
            public_path.display()
        );
    }
    Ok(())
}

fn key_list(request: &KeyListRequest) -> carapace_image::error::Result<()> {
    let signed = sign_key_list(request)?;
    let list = signed.unverified();
    let ids = |ids: Vec<String>| {
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    };
    println!("{}", request.out.display());
    eprintln!(
        "carapace: key list serial {} (trusts {}; revokes {}), signed by the root key",
        list.serial,
        ids(list.keys.iter().map(|k| k.id.to_string()).collect()),
        ids(list.revoked.iter().map(|id| id.to_string()).collect()),
    );
    Ok(())
}

fn make_bundle(
    recipe: &std::path::Path,
    workspace: &std::path::Path,
    options: &BundleOptions,
) -> carapace_image::error::Result<()> {
    let report = bundle(recipe, workspace, options)?;
    let manifest = &report.output.manifest;
    let boot: u64 = manifest.boot.iter().map(|b| b.size).sum();
    println!("{}", report.dir.display());
    eprintln!(
        "carapace: bundled {} {} for board {} ({} build {}): root {} KiB, boot files {} KiB, \
         {} chunks ({} KiB), installs over {}, signed by key {}",
        manifest.version,
        if report.built {
            "from a new build"
        } else {
            "from the existing build"
        },
        manifest.board,
        recipe.display(),
        manifest.build_id,
        manifest.root.size >> 10,
        boot >> 10,
        report.output.chunk_files,
        report.output.chunk_bytes >> 10,
        match manifest.min_from_version.as_str() {
            "0" => "any version".to_owned(),
            min_from => format!("{min_from} or newer"),
        },
        manifest.key_id
    );
    for patch in &manifest.patches {
        eprintln!(
            "carapace: patch for {} from the file with sha256 {}: {} KiB",
            patch.file,
            patch.from_sha256,
            patch.size >> 10
        );
    }
    if !options.patch_from.is_empty() && manifest.patches.is_empty() {
        eprintln!("(no patch was smaller than the chunks it would save; none is included)");
    }
    if !report.built {
        eprintln!("(pass --build to build again first)");
    }
    Ok(())
}

fn publish_bundle(options: &PublishOptions) -> carapace_image::error::Result<()> {
    let published = publish(options)?;
    let pointer = &published.pointer;
    println!(
        "{}",
        options
            .to
            .join(carapace_update::layout::channel(&pointer.channel))
            .display()
    );
    eprintln!(
        "carapace: {} now offers {} {} to {:.1} % of the fleet (serial {}); {} chunks copied \
         ({} KiB), {} already there",
        pointer.channel,
        pointer.board,
        pointer.version,
        f64::from(pointer.rollout_permille) / 10.0,
        pointer.serial,
        published.chunks_copied,
        published.bytes_copied >> 10,
        published.chunks_present
    );
    match published.checked_against {
        Some(serial) => eprintln!("Signers checked against key list serial {serial}."),
        None => eprintln!(
            "No key list given or in the repository: the signers were not checked against one \
             (pass --key-list to publish it as keys.json)."
        ),
    }
    Ok(())
}

fn update_size(
    old: &[PathBuf],
    new: &[PathBuf],
    avg: Option<u32>,
) -> carapace_image::error::Result<()> {
    let params = match avg {
        Some(avg) => ChunkerParams {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        },
        None => ChunkerParams::DEFAULT,
    };
    let report = carapace_image::update_size::measure(old, new, params)?;
    print!("{}", carapace_image::update_size::render(&report));
    Ok(())
}

fn print_pairing(pairing: &carapace_image::owner::Pairing) {
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
