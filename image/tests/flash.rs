//! `carapace flash` as a person runs it, through the binary, with the real test image: to a
//! file and to a loop device (a disk as the kernel sees one), with the owner's settings from
//! flags; and each refusal, with its message. Needs root (loop devices, mount), as make test
//! has.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use carapace_image::layout::{DiskPlan, ESP_NAME, ROOT_A_NAME};
use carapace_image::owner::read_settings;
use carapace_owner::OwnerSettings;
use sha2::{Digest, Sha256};

const TEST_RECIPE: &str = "recipes/x86-64-qemu-test.toml";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test image, built once per test binary (the whole-system tests reuse the build).
fn test_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let ws = workspace();
        match carapace_image::build::build(&ws.join(TEST_RECIPE), &ws) {
            Ok(out) => out.image,
            Err(e) => panic!("building {TEST_RECIPE} failed: {e}"),
        }
    })
}

fn carapace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carapace"))
        .current_dir(workspace())
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    let text = stderr(&output);
    assert!(output.status.success(), "carapace failed:\n{text}");
    text
}

/// The refusal's reason, which must follow "will not flash TARGET: ".
fn refused(output: Output, target: &str) -> String {
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let prefix = format!("carapace: error: will not flash {target}: ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"));
    line[prefix.len()..].to_string()
}

fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
}

/// A copy of `from` in a new temporary file, with its all-zero chunks left as holes (a plain
/// copy of the test image fills 2.5 GB of the disk).
fn sparse_copy(from: &Path) -> File {
    let from = File::open(from).unwrap();
    let length = from.metadata().unwrap().len();
    let copy = tempfile::tempfile().unwrap();
    let mut chunk = vec![0u8; 64 << 10];
    let mut at = 0;
    while at < length {
        let n = chunk.len().min((length - at) as usize);
        from.read_exact_at(&mut chunk[..n], at).unwrap();
        if chunk[..n].iter().any(|&b| b != 0) {
            copy.write_all_at(&chunk[..n], at).unwrap();
        }
        at += n as u64;
    }
    copy.set_len(length).unwrap();
    copy
}

fn sha256_of(file: &File, length: u64) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < length {
        let n = buffer.len().min((length - at) as usize);
        file.read_exact_at(&mut buffer[..n], at).unwrap();
        hash.update(&buffer[..n]);
        at += n as u64;
    }
    hash.finalize().into()
}

fn secrets(dir: &Path) -> Vec<String> {
    let put = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    vec![
        "--telegram-bot".into(),
        "kitchen_box_bot".into(),
        "--telegram-token-file".into(),
        put("token", "123456:AAEhBP0av28-not-a-real-token\n"),
        "--llm-endpoint".into(),
        "https://llm.example/v1".into(),
        "--llm-model".into(),
        "gpt-4o-mini".into(),
        "--llm-key-file".into(),
        put("key", "sk-test\n"),
        "--wifi".into(),
        "My Home".into(),
        "--wifi-passphrase-file".into(),
        put("wifi", "correct horse battery\n"),
    ]
}

/// The settings on the ESP of what `disk` holds, checked against the flags `secrets` gave.
fn settings_on(disk: &File, length: u64) -> OwnerSettings {
    let text = read_settings(disk, length)
        .unwrap()
        .expect("no owner settings file on the ESP");
    let settings = OwnerSettings::parse(&text).unwrap();
    assert_eq!(settings.telegram.as_ref().unwrap().bot, "kitchen_box_bot");
    assert_eq!(settings.llm[0].base_url, "https://llm.example/v1");
    assert_eq!(settings.llm[0].api_key, "sk-test");
    assert_eq!(settings.wifi[0].ssid, "My Home");
    assert_eq!(settings.wifi[0].passphrase, "correct horse battery");
    settings
}

/// The bytes of the image's root-a slot: identical on the target.
fn root_a_matches(image: &File, target: &File) {
    let plan = DiskPlan::new(&board_support::board::X86_64, 256, 1024, 64).unwrap();
    let root = plan.partition(ROOT_A_NAME);
    let mut a = vec![0u8; root.size as usize];
    let mut b = vec![0u8; root.size as usize];
    image.read_exact_at(&mut a, root.offset).unwrap();
    target.read_exact_at(&mut b, root.offset).unwrap();
    assert!(a == b, "root-a differs between the image and the target");
}

#[test]
fn flashing_to_a_file_verifies_it_and_puts_the_owners_settings_and_qr_code_on_it() {
    test_image();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("kitchen.img");
    let png = dir.path().join("pair.png");
    let to_arg = to.display().to_string();
    let png_arg = png.display().to_string();
    let mut args = vec!["flash", "--recipe", TEST_RECIPE, "--to", &to_arg];
    let secrets = secrets(dir.path());
    args.extend(secrets.iter().map(String::as_str));
    args.extend(["--qr-png", &png_arg]);
    let out = ok(carapace(&args));

    let image = File::open(test_image()).unwrap();
    let length = image.metadata().unwrap().len();
    let verified = line_starting(&out, "carapace: verified: read back ");
    let image_hash = hex::encode(sha256_of(&image, length));
    assert!(
        verified.ends_with(&format!("with the image's sha256 {image_hash}")),
        "{verified}"
    );
    line_starting(&out, "carapace: the owner's settings are on the ESP");

    let flashed = File::open(&to).unwrap();
    assert_eq!(flashed.metadata().unwrap().len(), length);
    // The runs of zeros stayed holes: a fraction of the image is allocated.
    let allocated = flashed.metadata().unwrap().blocks() * 512;
    assert!(
        allocated < length / 2,
        "{allocated} of {length} bytes allocated"
    );
    root_a_matches(&image, &flashed);
    let settings = settings_on(&flashed, length);

    // The pairing link, as a QR code on the terminal and as a PNG, carries the file's code.
    let link = format!(
        "https://t.me/kitchen_box_bot?start={}",
        settings.pairing_code.as_deref().unwrap()
    );
    line_starting(
        &out,
        &format!("Once the box is running, scan the code above or open {link} to pair it."),
    );
    assert!(out.contains("█"), "no QR code printed:\n{out}");
    let mut magic = [0u8; 8];
    File::open(&png).unwrap().read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"\x89PNG\r\n\x1a\n");
    assert!(!dir.path().join("kitchen.img.partial").exists());

    // Again without --force: the file is there.
    let why = refused(
        carapace(&["flash", "--recipe", TEST_RECIPE, "--to", &to_arg]),
        &to_arg,
    );
    assert_eq!(
        why,
        format!("{to_arg} exists; add --force to replace it, or name a new file")
    );
}

/// A loop device over a file; detached when dropped.
struct Loop {
    device: String,
    _backing: tempfile::NamedTempFile,
}

impl Loop {
    fn new(backing: tempfile::NamedTempFile, partitions: bool) -> Loop {
        let path = backing.path().display().to_string();
        let mut args = vec!["--find", "--show"];
        if partitions {
            args.push("--partscan");
        }
        args.push(&path);
        let out = Command::new("losetup").args(&args).output().unwrap();
        assert!(out.status.success(), "losetup: {}", stderr(&out));
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let first = format!("{device}p1");
        if partitions && !Path::new(&first).exists() {
            // A kernel built without GPT support scans nothing: partx adds them from user space.
            let partx = Command::new("partx")
                .args(["-a", &device])
                .output()
                .unwrap();
            assert!(partx.status.success(), "partx: {}", stderr(&partx));
        }
        Loop {
            device,
            _backing: backing,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

#[test]
fn flashing_a_zstd_image_to_a_disk_clears_what_the_disk_held_before() {
    let image_path = test_image();
    let zst = image_path.with_extension("img.zst");
    let image = File::open(image_path).unwrap();
    let length = image.metadata().unwrap().len();
    // A used card: a block of something else in every 256 KiB the image will cover, at a
    // different place in each (flash skips the image's runs of zeros, 64 KiB chunks, and must
    // zero them on a disk). Not every byte: that backing file took 2.5 GB of the disk.
    let backing = tempfile::NamedTempFile::new().unwrap();
    let old = [0xeeu8; 4096];
    let stride = 256 << 10;
    let mut at = 0;
    while at < length + (64 << 20) {
        let within = (at / stride * 7919 % 64) * 4096;
        backing.as_file().write_all_at(&old, at + within).unwrap();
        at += stride;
    }
    backing.as_file().set_len(length + (64 << 20)).unwrap();
    let disk = Loop::new(backing, false);
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let zst_arg = zst.display().to_string();
    let mut args = vec!["flash", "--image", &zst_arg, "--to", &disk.device];
    args.extend(secrets.iter().map(String::as_str));

    // A loop device is not removable: like an internal drive, it takes --force.
    let why = refused(carapace(&args), &disk.device);
    assert_eq!(
        why,
        format!(
            "{} is not a removable disk (an internal drive?); if it really is the one to \
             overwrite, add --force",
            disk.device
        )
    );

    args.push("--force");
    let out = ok(carapace(&args));
    line_starting(
        &out,
        &format!(
            "carapace: writing {zst_arg} ({}, from zstd) to {}",
            carapace_image::flash::target::human(length),
            disk.device
        ),
    );
    line_starting(&out, "carapace: verified: read back ");
    let written = File::open(&disk.device).unwrap();
    let settings = settings_on(&written, length);
    // Byte for byte the image, but for the settings file on the ESP: no 0xee left anywhere.
    let esp = DiskPlan::new(&board_support::board::X86_64, 256, 1024, 64)
        .unwrap()
        .partition(ESP_NAME)
        .clone();
    let expected = sparse_copy(image_path);
    carapace_image::owner::write_settings(&expected, length, &settings).unwrap();
    let mut a = vec![0u8; esp.size as usize];
    let mut b = vec![0u8; esp.size as usize];
    expected.read_exact_at(&mut a, esp.offset).unwrap();
    written.read_exact_at(&mut b, esp.offset).unwrap();
    assert!(a == b, "the ESP differs from the image's with the settings");
    let beyond = esp.offset + esp.size;
    assert_eq!(
        sha256_of(&expected, length)[..],
        sha256_of(&written, length)[..],
        "the disk differs from the image past the ESP (from byte {beyond})"
    );
}

#[test]
fn flash_refuses_a_partition_a_disk_too_small_a_mounted_disk_and_the_hosts_own_disk() {
    let image = test_image().display().to_string();
    // A small partitioned disk: a GPT with the x86-64 layout's four partitions.
    let plan = DiskPlan::new(&board_support::board::X86_64, 40, 20, 10).unwrap();
    let backing = tempfile::NamedTempFile::new().unwrap();
    backing.as_file().set_len(plan.total_size).unwrap();
    let ids = carapace_image::gpt_writer::GptIds {
        disk: uuid::Uuid::from_u128(1),
        partitions: [2, 3, 4, 5].map(uuid::Uuid::from_u128).to_vec(),
    };
    carapace_image::gpt_writer::write_gpt(&mut backing.as_file(), &plan, &ids).unwrap();
    let small = Loop::new(backing, true);

    let partition = format!("{}p1", small.device);
    let why = refused(
        carapace(&["flash", "--image", &image, "--to", &partition, "--force"]),
        &partition,
    );
    assert_eq!(
        why,
        format!(
            "{partition} is partition 1 of {0}: flash the whole disk, --to {0}",
            small.device
        )
    );

    let why = refused(
        carapace(&["flash", "--image", &image, "--to", &small.device, "--force"]),
        &small.device,
    );
    assert!(
        why.starts_with(&format!(
            "{} holds 92.0 MiB but the image is 2.3 GiB;",
            small.device
        )),
        "{why}"
    );

    // A disk with a file system mounted from it.
    let backing = tempfile::NamedTempFile::new().unwrap();
    backing.as_file().set_len(64 << 20).unwrap();
    let mounted = Loop::new(backing, false);
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", &mounted.device])
        .output()
        .unwrap();
    assert!(mkfs.status.success(), "mkfs.ext4: {}", stderr(&mkfs));
    let point = tempfile::tempdir().unwrap();
    let point_arg = point.path().display().to_string();
    let mount = Command::new("mount")
        .args([&mounted.device, &point_arg])
        .output()
        .unwrap();
    assert!(mount.status.success(), "mount: {}", stderr(&mount));
    let why = refused(
        carapace(&[
            "flash",
            "--image",
            &image,
            "--to",
            &mounted.device,
            "--force",
        ]),
        &mounted.device,
    );
    let _ = Command::new("umount").arg(&point_arg).status();
    assert_eq!(
        why,
        format!(
            "{0} is in use: {0} is mounted at {point_arg}; unmount it (or stop what uses it) \
             and try again",
            mounted.device
        )
    );

    // The disk this machine runs from, even with --force.
    let host = host_root_disk();
    let why = refused(
        carapace(&["flash", "--image", &image, "--to", &host, "--force"]),
        &host,
    );
    assert!(
        why.starts_with(&format!("{host} is the disk this computer runs from")),
        "{why}"
    );

    // No --to: nothing is written, and the disks it may mean are listed (none here, or some).
    let out = carapace(&["flash", "--image", &image]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.starts_with("carapace: error: carapace flash needs --to DISK (or --to FILE); "),
        "{text}"
    );

    // Something that is not a disk image at all.
    let not_an_image = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_an_image.path(), vec![7u8; 4096]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("x.img").display().to_string();
    let out = carapace(&[
        "flash",
        "--image",
        &not_an_image.path().display().to_string(),
        "--to",
        &to,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains(": not a Carapace disk image (no GPT at sector 1)"),
        "{text}"
    );
    assert!(!Path::new(&to).exists());
}

/// The whole disk under /, as lsblk names it (found apart from carapace's own lookup).
fn host_root_disk() -> String {
    let source = Command::new("findmnt")
        .args(["-nvo", "SOURCE", "/"])
        .output()
        .unwrap();
    let source = String::from_utf8_lossy(&source.stdout).trim().to_string();
    assert!(
        source.starts_with("/dev/"),
        "this machine's / is on {source:?}, not a disk: the check needs one"
    );
    let parent = Command::new("lsblk")
        .args(["-nso", "NAME,TYPE", &source])
        .output()
        .unwrap();
    // lsblk -s lists the device, then what it sits on, down to the disk.
    let text = String::from_utf8_lossy(&parent.stdout).into_owned();
    let disk = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words
                .next()?
                .trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            (words.next()? == "disk").then(|| name.to_string())
        })
        .next_back()
        .unwrap_or_else(|| panic!("no disk under {source} in lsblk's answer:\n{text}"));
    format!("/dev/{disk}")
}
