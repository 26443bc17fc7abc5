//! The harness every whole-system test file shares: build the test image once per test binary,
//! give each test its own qcow2 overlay, and read console lines anchored at their start.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use carapace_image::board::Board;
use carapace_image::qemu::{Vm, VmConfig, create_overlay};
use carapace_image::recipe::Recipe;

pub const TEST_RECIPE: &str = "recipes/x86-64-qemu-test.toml";
/// The image users run: `make run` builds it.
pub const RELEASE_RECIPE: &str = "recipes/x86-64-qemu.toml";
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The board the test recipe names: its QEMU machine boots the test image.
pub fn test_board() -> &'static Board {
    static BOARD: OnceLock<&'static Board> = OnceLock::new();
    BOARD.get_or_init(|| {
        let recipe = workspace().join(TEST_RECIPE);
        let (recipe, _) = Recipe::load(&recipe).unwrap_or_else(|e| panic!("{e}"));
        carapace_image::board::find(&recipe.board).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Builds `recipe` (relative to the workspace) into its image once per `cell`.
fn built_once(cell: &'static OnceLock<PathBuf>, recipe: &str) -> &'static Path {
    cell.get_or_init(|| {
        let ws = workspace();
        match carapace_image::build::build(&ws.join(recipe), &ws) {
            Ok(out) => out.image,
            Err(e) => panic!("building {recipe} failed: {e}"),
        }
    })
}

/// Builds the test image once per test binary.
pub fn test_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    built_once(&IMAGE, TEST_RECIPE)
}

/// Builds the release recipe once per test binary.
pub fn release_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    built_once(&IMAGE, RELEASE_RECIPE)
}

/// A fresh machine directory with a 4 GiB overlay of `image`.
pub fn machine_of(image: &Path, name: &str) -> (tempfile::TempDir, VmConfig) {
    machine_on(test_board(), image, name)
}

/// A fresh machine of `board`'s QEMU model with a 4 GiB overlay of `image`.
pub fn machine_on(board: &Board, image: &Path, name: &str) -> (tempfile::TempDir, VmConfig) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("carapace-{name}-"))
        .tempdir()
        .expect("tempdir");
    let disk = dir.path().join("disk.qcow2");
    create_overlay(image, &disk, 4).expect("qcow2 overlay");
    let mut config =
        VmConfig::for_image(board, image, disk, dir.path()).expect("the board's firmware stand-in");
    config.echo = std::env::var_os("CARAPACE_TEST_ECHO").is_some();
    (dir, config)
}

/// A fresh machine directory with a 4 GiB overlay of the test image.
pub fn machine(name: &str) -> (tempfile::TempDir, VmConfig) {
    machine_of(test_image(), name)
}

pub fn fail(vm: &Vm, what: impl std::fmt::Display) -> ! {
    panic!("{what}\n--- console ---\n{}", vm.console().join("\n"))
}

pub fn boot_to_ready(config: &VmConfig) -> Vm {
    let mut vm = Vm::start(config).expect("start QEMU");
    if let Err(e) = vm.wait_for("carapace: ready slot=a", 0, BOOT_TIMEOUT) {
        fail(&vm, e);
    }
    vm
}

/// The first console line that starts with `needle` (waiting up to a minute).
pub fn line_with(vm: &mut Vm, needle: &str) -> String {
    match vm.wait_for(needle, 0, Duration::from_secs(60)) {
        Ok((_, line)) => line,
        Err(e) => fail(vm, e),
    }
}

/// The value of `key=value` in a console line.
pub fn value<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in '{line}'"))
}

pub fn power_off(vm: &mut Vm) {
    vm.power_button().expect("QMP power button");
    line_with(vm, "carapace: shutdown reason=power-button action=poweroff");
    line_with(vm, "carapace: data unmounted clean=yes");
    let status = vm
        .wait_exit(Duration::from_secs(90))
        .expect("machine powers off");
    assert!(status.success(), "QEMU exited with {status}");
}

pub fn read_byte(path: &Path, offset: u64) -> u8 {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).expect("image");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    let mut b = [0u8; 1];
    file.read_exact(&mut b).expect("read");
    b[0]
}

/// Where the ESP file whose bytes are `file` starts in `image`, `esp` being the ESP's bytes
/// there: the builder writes each ESP file in one run of clusters, so its first 4 KiB (a UKI's
/// PE headers, with its own section table) are found at a sector boundary inside the ESP.
pub fn esp_file_offset(image: &Path, esp: std::ops::Range<u64>, file: &[u8]) -> u64 {
    use std::os::unix::fs::FileExt;
    let head = &file[..4096];
    let mut bytes = vec![0u8; (esp.end - esp.start) as usize];
    std::fs::File::open(image)
        .expect("image")
        .read_exact_at(&mut bytes, esp.start)
        .expect("read the ESP");
    let at = (0..bytes.len() - head.len())
        .step_by(512)
        .find(|&at| &bytes[at..at + head.len()] == head)
        .expect("the file on the ESP");
    esp.start + at as u64
}

/// The offset, in a UKI's bytes, of the byte a tamper test changes in `section`: in the
/// command line a byte of the verity root hash, elsewhere the section's middle.
pub fn uki_tamper_offset(uki: &[u8], section: &str) -> usize {
    let (offset, data) =
        carapace_image::uki::section(uki, section).unwrap_or_else(|| panic!("no {section}"));
    let within = match section {
        ".cmdline" => {
            String::from_utf8_lossy(data)
                .find("carapace.verity=")
                .expect("verity on the command line")
                + 20
        }
        _ => data.len() / 2,
    };
    offset + within
}

/// Boots `config`, whose slot UKI has `what` changed, until the firmware gives up on the boot
/// entry; then checks that systemd-boot said the firmware denied the UKI and that nothing of
/// the kernel ran.
pub fn assert_changed_uki_is_refused(config: &VmConfig, what: &str, timeout: Duration) {
    let mut vm = Vm::start(config).expect("start QEMU");
    if let Err(e) = vm.wait_for("BdsDxe: failed to start Boot0001", 0, timeout) {
        fail(
            &vm,
            format!("a UKI with {what} changed was not refused: {e}"),
        );
    }
    let console = vm.console();
    assert!(
        console
            .iter()
            .any(|l| l.contains("Error loading \\a\\carapace.efi: Access denied")),
        "systemd-boot did not say the firmware denied the UKI ({what} changed)\n{}",
        console.join("\n")
    );
    assert!(
        !console.iter().any(|l| l.starts_with("carapace: stage1")),
        "the kernel ran with {what} changed\n{}",
        console.join("\n")
    );
}

/// Runs one qemu-io `command` (a write, say) on a qcow2 overlay: damage the tests put on a
/// machine's disk between boots, never on the image under it.
pub fn qemu_io(disk: &Path, command: &str) {
    let io = std::process::Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command])
        .arg(disk)
        .output()
        .expect("qemu-io (qemu-utils)");
    assert!(
        io.status.success(),
        "qemu-io {command}: {}",
        String::from_utf8_lossy(&io.stderr)
    );
}

/// Writes `text` as recipe `name` in `dir`, with the default recipe's lock and files beside
/// it: a variant of the default recipe that a test builds.
pub fn write_release_variant(dir: &Path, name: &str, text: &str) -> PathBuf {
    write_variant(dir, "x86-64-qemu", name, text)
}

/// Writes `text` as recipe `name` in `dir`, with recipe `base`'s lock and the recipes' files
/// beside it.
pub fn write_variant(dir: &Path, base: &str, name: &str, text: &str) -> PathBuf {
    let recipes = workspace().join("recipes");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write recipe");
    std::fs::copy(
        recipes.join(format!("{base}.lock")),
        dir.join(format!("{name}.lock")),
    )
    .expect("copy lock");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    for entry in std::fs::read_dir(recipes.join("files")).expect("recipe files") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), files.join(entry.file_name())).expect("copy file");
    }
    path
}

/// A raw copy of a machine's disk (its qcow2 overlay and the image under it), sparse.
pub fn to_raw(qcow2: &Path, raw: &Path) {
    let convert = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(qcow2)
        .arg(raw)
        .output()
        .expect("qemu-img");
    assert!(
        convert.status.success(),
        "{}",
        String::from_utf8_lossy(&convert.stderr)
    );
}

/// The owner's factory reset: `carapace-factory-reset` put in the root of the ESP (at
/// `esp_offset`, `esp_size` bytes) of a raw disk, with fatfs, as any computer would.
pub fn put_reset_file(raw: &Path, esp_offset: u64, esp_size: u64) {
    put_esp_file(
        raw,
        esp_offset,
        esp_size,
        "carapace-factory-reset",
        b"erase /data\n",
    );
}

/// Writes `name` with `content` into the root of the FAT ESP of the raw disk `raw`, as the owner
/// would from another computer.
pub fn put_esp_file(raw: &Path, esp_offset: u64, esp_size: u64, name: &str, content: &[u8]) {
    use std::io::Write;
    with_esp(raw, esp_offset, esp_size, true, |fs| {
        let mut file = fs.root_dir().create_file(name).expect("create");
        file.truncate().expect("truncate");
        file.write_all(content).expect("write");
    });
}

/// Whether the root of the raw disk's ESP holds `name`.
pub fn esp_has_file(raw: &Path, esp_offset: u64, esp_size: u64, name: &str) -> bool {
    let mut found = false;
    with_esp(raw, esp_offset, esp_size, false, |fs| {
        found = fs
            .root_dir()
            .iter()
            .any(|entry| entry.is_ok_and(|entry| entry.file_name() == name));
    });
    found
}

fn with_esp(
    raw: &Path,
    esp_offset: u64,
    esp_size: u64,
    write: bool,
    work: impl FnOnce(&fatfs::FileSystem<std::io::Cursor<&mut [u8]>>),
) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(raw)
        .expect("raw");
    let mut bytes = vec![0u8; esp_size as usize];
    file.seek(SeekFrom::Start(esp_offset)).expect("seek");
    file.read_exact(&mut bytes).expect("read the ESP");
    {
        let fs = fatfs::FileSystem::new(
            std::io::Cursor::new(&mut bytes[..]),
            fatfs::FsOptions::new(),
        )
        .expect("the ESP is FAT");
        work(&fs);
        fs.unmount().expect("unmount");
    }
    if write {
        file.seek(SeekFrom::Start(esp_offset)).expect("seek");
        file.write_all(&bytes).expect("write the ESP back");
        file.sync_all().expect("sync");
    }
}
